# posyandu.lansia → one SATUSEHAT transaction Bundle.
#
# Resources: Patient and Practitioner as look-ups by NIK, the visit Encounter (as
# posyandu.balita), one Observation per PTM measurement (LOINC + UCUM from the shared table
# ptm-pemeriksaan; systolic and diastolic separately), the smoking status (LOINC 72166-2 with
# a LOINC answer) and the AKS/ADL (Barthel) total with its level of dependence as a Kemkes
# clinical-term interpretation. PUMA and SKILAS are checked by the input schema and kept with
# the record but not sent: SATUSEHAT has no Questionnaire (Q-number) or codes for them that
# the project could confirm (see examples/README.md). The helpers down to `age_on` are the
# same in posyandu.remaja, posyandu.usia-produktif and posyandu.lansia.
# The Encounter names the visit's diagnosis, a Condition coded ICD-10 Z00.0 (see below).

def loinc($code; $display): concept("http://loinc.org"; $code; $display);
def clinical_term($code; $display): concept("http://terminology.kemkes.go.id/CodeSystem/clinical-term"; $code; $display);
def category($code):
  [concept("http://terminology.hl7.org/CodeSystem/observation-category"; $code;
     {"vital-signs": "Vital Signs", "exam": "Exam", "laboratory": "Laboratory",
      "social-history": "Social History", "survey": "Survey"}[$code])];
# A table row {code, display} as an Observation.interpretation; none when the row has no code.
def interpretation: if . == null or .code == null then null else [clinical_term(.code; .display)] end;
# Whole years from this date of birth ("YYYY-MM-DD") to $date ("YYYY-MM-DD").
def age_on($date): ($date[0:4] | tonumber) - (.[0:4] | tonumber) - (if $date[5:10] < .[5:10] then 1 else 0 end);
# The visit's diagnosis. SATUSEHAT refuses a finished Encounter without Encounter.diagnosis
# (rule 10457: staging answered "Element not found: Encounter.diagnosis (RuleNumber: 10457)";
# an in-progress one without it is accepted). An elderly screening record carries no diagnosis
# — the input has no such field; the measured values, the anaemia class and the AKS level of
# dependence are findings, sent as Observations, not diagnoses made at the visit — so the visit
# gets the ICD-10 code of what it is: Z00.0 General medical examination (ICD-10 has no Z00 code
# of its own for older people), as a Condition (encounter-diagnosis) in Encounter.diagnosis
# (use DD, rank 1), built the way anc.kunjungan builds its diagnoses.
def visit_diagnosis: {code: "Z00.0", display: "General medical examination"};

. as $r
| ($r.zona_waktu // "WIB") as $tz
| ($r.waktu_mulai | to_utc($tz)) as $start
| ($r.waktu_selesai | to_utc($tz)) as $end
| full_url("Patient") as $patient
| full_url("Practitioner") as $nakes
# Without nakes (a posyandu run by kader alone) there is no Practitioner: the Encounter goes
# without participant and the Observations name the sender's Organization as performer
# (profiles/satusehat/rules.yaml, rules 10119 and 10383, warn about both).
| (if $r.nakes then [ref($nakes)] else [{reference: "Organization/\($org)"}] end) as $performers
| full_url("Encounter") as $encounter
| ({reference: "Location/\($location)", display: $r.nama_posyandu}) as $where
| (visit_diagnosis + {key: "diagnosa/\(visit_diagnosis.code)"}) as $dx
| full_url("Condition/\($dx.key)") as $condition
| ($r.peserta) as $p
| ($p.tanggal_lahir | age_on($r.waktu_mulai[0:10])) as $age
| if $age < 60 then
    error("gerbang: posyandu.lansia is for participants aged 60 or more, but peserta.tanggal_lahir gives \($age) years on the visit date; send the record as posyandu.usia-produktif")
  else . end

# One observation of this visit; $value is {valueQuantity: …} or {valueCodeableConcept: …}.
| def observation($key; $category; $code; $value; $interpretation):
    ({
      resourceType: "Observation",
      identifier: [{system: sys_id("observation"), value: local_key($key)}],
      status: "final",
      category: $category,
      code: $code,
      subject: ref($patient),
      encounter: ref($encounter),
      performer: $performers,
      effectiveDateTime: $start,
      issued: $end
    } + $value + {interpretation: $interpretation})
    | post_entry(full_url("Observation/\($key)"));
  # A measurement named by its row in ptm-pemeriksaan (code, unit, category, key, scale).
  def measurement($row; $value; $interpretation):
    ($row | lookup("ptm-pemeriksaan")) as $t
    | observation($t.key; category($t.category); loinc($t.code; $t.display);
        {valueQuantity: ucum(if $t.scale then $value * $t.scale else $value end; $t.unit)};
        $interpretation);

  ({
    resourceType: "Patient",
    identifier: [{use: "official", system: "https://fhir.kemkes.go.id/id/nik", value: $p.nik}],
    active: true,
    name: [{use: "official", text: $p.nama}],
    gender: ($p.jenis_kelamin | lookup("sex")),
    birthDate: $p.tanggal_lahir,
    address: (if $p.alamat or $p.kode_desa then [{
      use: "home",
      line: (if $p.alamat then [$p.alamat] else null end),
      extension: (if $p.kode_desa then [{
        url: "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode",
        extension: [
          {url: "province", valueCode: $p.kode_desa[0:2]},
          {url: "city", valueCode: $p.kode_desa[0:4]},
          {url: "district", valueCode: $p.kode_desa[0:6]},
          {url: "village", valueCode: $p.kode_desa},
          (if $p.rt then {url: "rt", valueCode: $p.rt} else null end),
          (if $p.rw then {url: "rw", valueCode: $p.rw} else null end)
        ]
      }] else null end)
    }] else null end)
  }
  | lookup_entry($patient; "identifier=https://fhir.kemkes.go.id/id/nik|\($p.nik)")
  ) as $patient_entry

| (if $r.nakes == null then null else
   {
    resourceType: "Practitioner",
    identifier: [{use: "official", system: "https://fhir.kemkes.go.id/id/nik", value: $r.nakes.nik}],
    name: [{use: "official", text: $r.nakes.nama}]
  }
  | lookup_entry($nakes; "identifier=https://fhir.kemkes.go.id/id/nik|\($r.nakes.nik)")
  end) as $nakes_entry

| ({
    resourceType: "Encounter",
    identifier: [{system: sys_id("encounter"), value: $local_id}],
    status: "finished",
    class: coding("http://terminology.hl7.org/CodeSystem/v3-ActCode"; "AMB"; "ambulatory"),
    subject: (ref($patient) + {display: $p.nama}),
    participant: (if $r.nakes then [{
      type: [concept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType"; "ATND"; "attender")],
      individual: (ref($nakes) + {display: $r.nakes.nama})
    }] else null end),
    period: {start: $start, end: $end},
    location: [{location: $where}],
    diagnosis: [{
      condition: (ref($condition) + {display: $dx.display}),
      use: concept("http://terminology.hl7.org/CodeSystem/diagnosis-role"; "DD"; "Discharge diagnosis"),
      rank: 1
    }],
    statusHistory: [
      {status: "arrived", period: {start: $start, end: $start}},
      {status: "in-progress", period: {start: $start, end: $end}},
      {status: "finished", period: {start: $end, end: $end}}
    ],
    serviceProvider: {reference: "Organization/\($org)"}
  }
  | post_entry($encounter)
  ) as $encounter_entry

# Without nakes the Condition has no recorder: rule 10678 wants a Practitioner there, and the
# sender's Organization is not one.
| ({
    resourceType: "Condition",
    identifier: [{system: sys_id("condition"), value: local_key($dx.key)}],
    clinicalStatus: concept("http://terminology.hl7.org/CodeSystem/condition-clinical"; "active"; "Active"),
    verificationStatus: concept("http://terminology.hl7.org/CodeSystem/condition-ver-status"; "confirmed"; "Confirmed"),
    category: [concept("http://terminology.hl7.org/CodeSystem/condition-category"; "encounter-diagnosis"; "Encounter Diagnosis")],
    code: concept("http://hl7.org/fhir/sid/icd-10"; $dx.code; $dx.display),
    subject: (ref($patient) + {display: $p.nama}),
    encounter: ref($encounter),
    recordedDate: $end,
    recorder: (if $r.nakes then ref($nakes) else null end)
  }
  | post_entry($condition)
  ) as $condition_entry

| ($r.pengukuran) as $m
| ($r.laboratorium // {}) as $l
| ($r.faktor_risiko // {}) as $f
| [
    (("berat_badan", "tinggi_badan", "imt", "lingkar_perut", "lila", "sistole", "diastole")
      | select($m[.] != null) | measurement(.; $m[.]; null)),
    (if $l.gula_darah != null then
       measurement("gula_darah_\($l.jenis_gula_darah // "sewaktu")"; $l.gula_darah; null)
     else empty end),
    (if $l.kadar_hb != null then
       measurement("kadar_hb"; $l.kadar_hb;
         if $l.status_hb then $l.status_hb | lookup("ptm-anemia") | interpretation else null end)
     else empty end),
    (("kolesterol", "asam_urat") | select($l[.] != null) | measurement(.; $l[.]; null)),
    # Smoking status; `pasif` has no answer code and is not sent (table ptm-merokok).
    ($f.merokok // empty | lookup("ptm-merokok") | select(.code != null) | . as $answer
     | ("merokok" | lookup("ptm-pemeriksaan")) as $t
     | observation($t.key; category($t.category); loinc($t.code; $t.display);
         {valueCodeableConcept: loinc($answer.code; $answer.display)}; null))
  ] as $ptm

# AKS/ADL: the total of the ten items (0–20), checked against the form's total and level,
# sent on the LOINC 0–100 scale with the level of dependence as interpretation.
| [ $r.aks // empty
    | . as $a
    | ([$a.bab, $a.bak, $a.membersihkan_diri, $a.penggunaan_wc, $a.makan_minum, $a.berpindah,
        $a.berjalan, $a.berpakaian, $a.naik_turun_tangga, $a.mandi] | add) as $total
    | ($a.tingkat | lookup("lansia-aks")) as $level
    | if $a.total_skor != null and $a.total_skor != $total then
        error("gerbang: aks.total_skor is \($a.total_skor) but the ten items add up to \($total)")
      elif $total < $level.min or $total > $level.max then
        error("gerbang: aks.tingkat \"\($a.tingkat)\" needs a total of \($level.min)–\($level.max), but the items add up to \($total)")
      else measurement("skor_aks"; $total; $level | interpretation) end
  ] as $aks

| {
    resourceType: "Bundle",
    type: "transaction",
    entry: ([$patient_entry, $nakes_entry, $encounter_entry, $condition_entry] + $ptm + $aks)
  }
