# posyandu.balita → one SATUSEHAT transaction Bundle.
#
# Resources: Patient and Practitioner as look-ups by NIK (the forwarder turns them into
# Patient/{IHS} and Practitioner/{IHS} references), the visit Encounter, one Observation per
# measurement (LOINC + UCUM; nutritional-status class as a Kemkes clinical-term
# interpretation), one Immunization per dose given, vitamin A and deworming as
# MedicationAdministrations, and the child's TB screening as in record type skrining.tbc:
# one Observation per answered item whose code is confirmed (tbc-gejala table, valueBoolean)
# and a referral ServiceRequest when the result is `rujukan`. The Encounter names the visit's
# diagnosis, a Condition coded ICD-10 Z00.1 (see below).
# Every resource carries http://sys-ids.kemkes.go.id/<type>/<org>
# and a deterministic urn:uuid, so sending the record again is recognised upstream.
# Optional input that is absent becomes null here; gerbang removes nulls and empty
# elements from the output.

def kfa: "http://sys-ids.kemkes.go.id/kfa";
def loinc($code; $display): concept("http://loinc.org"; $code; $display);
def clinical_term($code; $display): concept("http://terminology.kemkes.go.id/CodeSystem/clinical-term"; $code; $display);
def category($code; $display): [concept("http://terminology.hl7.org/CodeSystem/observation-category"; $code; $display)];
def vital_signs: category("vital-signs"; "Vital Signs");
def survey: category("survey"; "Survey");
# The TB screening items of a child, in the order they are sent (same codes as skrining.tbc).
def tbc_items: ["batuk_menerus", "demam_2_minggu", "bb_tetap_turun_2_bulan", "lesu", "kontak_tbc"];
def exam: category("exam"; "Exam");
# The nutritional-status class of an index as an Observation.interpretation.
def nutrition_status: if . == null then null else [clinical_term(.; lookup("nutrition-status").display)] end;
# The visit's diagnosis. SATUSEHAT refuses a finished Encounter without Encounter.diagnosis
# (rule 10457: staging answered "Element not found: Encounter.diagnosis (RuleNumber: 10457)";
# an in-progress one without it is accepted). A posyandu record of a child carries no
# diagnosis — the input has no such field; the nutritional-status classes and the TB screening
# answers are findings, sent as Observations, not diagnoses made at the visit — so the visit
# gets the ICD-10 code of what it is: Z00.1 Routine child health examination (growth
# monitoring, immunization, vitamin A and deworming of a child under five), as a Condition
# (encounter-diagnosis) in Encounter.diagnosis (use DD, rank 1), built the way anc.kunjungan
# builds its diagnoses.
def visit_diagnosis: {code: "Z00.1", display: "Routine child health examination"};

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

# One measurement (or derived index) of this visit.
| def observation($key; $category; $code; $value; $interpretation):
    {
      resourceType: "Observation",
      identifier: [{system: sys_id("observation"), value: local_key($key)}],
      status: "final",
      category: $category,
      code: $code,
      subject: ref($patient),
      encounter: ref($encounter),
      performer: $performers,
      effectiveDateTime: $start,
      issued: $end,
      valueQuantity: $value,
      interpretation: $interpretation
    }
    | post_entry(full_url("Observation/\($key)"));

  ($r.peserta) as $p
| (if $p.nik then {system: "https://fhir.kemkes.go.id/id/nik", value: $p.nik}
   else {system: "https://fhir.kemkes.go.id/id/nik-ibu", value: $p.nik_ibu} end) as $pid

| ({
    resourceType: "Patient",
    identifier: [{use: "official"} + $pid],
    active: true,
    name: [{use: "official", text: $p.nama}],
    gender: ($p.jenis_kelamin | lookup("sex")),
    birthDate: $p.tanggal_lahir,
    multipleBirthInteger: $p.kelahiran_ke,
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
  | lookup_entry($patient; "identifier=\($pid.system)|\($pid.value)")
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
| ($r.pencatatan // {}) as $s
| [
    observation("berat-badan"; vital_signs; loinc("29463-7"; "Body weight");
      ucum($m.berat_badan; "kg"); $s.status_bbu | nutrition_status),
    (if $m.panjang_badan then
      observation("panjang-badan"; vital_signs;
        if $m.cara_ukur == "berdiri" then loinc("8302-2"; "Body height") else loinc("8306-3"; "Body height --lying") end;
        ucum($m.panjang_badan; "cm"); $s.status_pbu | nutrition_status)
     else empty end),
    (if $m.tinggi_badan then
      observation("tinggi-badan"; vital_signs;
        if $m.cara_ukur == "telentang" then loinc("8306-3"; "Body height --lying") else loinc("8302-2"; "Body height") end;
        ucum($m.tinggi_badan; "cm"); $s.status_tbu | nutrition_status)
     else empty end),
    (if $m.lingkar_kepala then
      observation("lingkar-kepala"; vital_signs; loinc("9843-4"; "Head Occipital-frontal circumference");
        ucum($m.lingkar_kepala; "cm"); null)
     else empty end),
    (if $m.lila then
      observation("lila"; exam; loinc("56072-2"; "Circumference Mid upper arm - right");
        ucum($m.lila; "cm"); null)
     else empty end),
    (if $s.zscore_bbpb != null then
      observation("zscore-bbpb"; exam; clinical_term("OC000005"; "Indeks Berat Badan menurut Panjang Badan (z-score)");
        ucum($s.zscore_bbpb; "{Zscore}"); $s.status_bbpb | nutrition_status)
     else empty end),
    (if $s.zscore_bbtb != null then
      observation("zscore-bbtb"; exam; clinical_term("OC000006"; "Indeks Berat Badan menurut Tinggi Badan (z-score)");
        ucum($s.zscore_bbtb; "{Zscore}"); $s.status_bbtb | nutrition_status)
     else empty end)
  ] as $observations

| [ ($r.imunisasi // [])[]
    | . as $i
    | ($i.antigen | lookup("antigen")) as $ag
    | "imunisasi/\($i.antigen)/\($i.dosis_ke)" as $key
    | {
        resourceType: "Immunization",
        identifier: [{system: sys_id("immunization"), value: local_key($key)}],
        status: "completed",
        vaccineCode: {
          coding: ([{system: kfa, code: $i.kfa_produk}]
                   + [$ag.vg[] | {system: kfa, code: .code, display: .display}]
                   + (if $ag.cvx then [coding("http://hl7.org/fhir/sid/cvx"; $ag.cvx.code; $ag.cvx.display)] else [] end)),
          text: $ag.display
        },
        patient: ref($patient),
        encounter: ref($encounter),
        occurrenceDateTime: $start,
        recorded: $end,
        primarySource: true,
        location: $where,
        lotNumber: $i.no_batch,
        expirationDate: $i.kadaluarsa,
        site: (if $i.lokasi_suntik then ($i.lokasi_suntik | lookup("injection-site")) as $site
               | concept("http://terminology.hl7.org/CodeSystem/v3-ActSite"; $site.code; $site.display) else null end),
        route: (($i.rute | lookup("vaccine-route")) as $rt | concept("http://www.whocc.no/atc"; $rt.code; $rt.display)),
        doseQuantity: (if $i.dosis_ml then ucum($i.dosis_ml; "mL") else null end),
        performer: [{
          function: concept("http://terminology.hl7.org/CodeSystem/v2-0443"; "AP"; "Administering Provider"),
          actor: ref($nakes)
        }],
        reasonCode: [ ($i.jenis, $i.waktu) | select(. != null) | . as $c | lookup("immunization-reason")
                      | concept(.system; $c; .display) ],
        fundingSource: (if $i.sumber_dana then
          concept("http://terminology.kemkes.go.id/CodeSystem/immunization-fundingSource"; $i.sumber_dana;
                  $i.sumber_dana | lookup("immunization-funding").display) else null end),
        protocolApplied: [{doseNumberPositiveInt: $i.dosis_ke}]
      }
    | post_entry(full_url("Immunization/\($key)"))
  ] as $immunizations

| [ $r.vitamin_a // empty
    | . as $v
    | ($v.warna | lookup("vitamin-a")) as $va
    | {
        resourceType: "MedicationAdministration",
        identifier: [{system: sys_id("medicationadministration"), value: local_key("vitamin-a")}],
        status: "completed",
        medicationCodeableConcept: {coding: [{system: kfa, code: $v.kfa_produk}], text: $va.display},
        subject: ref($patient),
        context: ref($encounter),
        effectiveDateTime: $start,
        performer: (if $r.nakes then [{actor: ref($nakes)}] else null end),
        dosage: {
          route: concept("http://www.whocc.no/atc"; "O"; "Oral"),
          dose: ucum($va.iu; "[iU]")
        }
      }
    | post_entry(full_url("MedicationAdministration/vitamin-a"))
  ] as $vitamin_a

| [ $r.obat_cacing // empty
    | . as $oc
    | {
        resourceType: "MedicationAdministration",
        identifier: [{system: sys_id("medicationadministration"), value: local_key("obat-cacing")}],
        status: "completed",
        medicationCodeableConcept: {coding: [{system: kfa, code: $oc.kfa_produk}], text: ($oc.nama // "Obat cacing")},
        subject: ref($patient),
        context: ref($encounter),
        effectiveDateTime: $start,
        performer: (if $r.nakes then [{actor: ref($nakes)}] else null end),
        dosage: {
          route: concept("http://www.whocc.no/atc"; "O"; "Oral"),
          dose: (if $oc.dosis_mg then ucum($oc.dosis_mg; "mg") else null end)
        }
      }
    | post_entry(full_url("MedicationAdministration/obat-cacing"))
  ] as $obat_cacing

# TB screening: every answered item with its code-table entry.
| ($r.skrining_tbc // {}) as $t
| [ tbc_items[] as $item
    | select($t[$item] != null)
    | {item: $item, answer: $t[$item], g: ($item | lookup("tbc-gejala"))} ] as $tbc_answers

| [ $tbc_answers[]
    | select(.g.code != null)
    | . as $a
    | "skrining-tbc/\($a.item)" as $key
    | {
        resourceType: "Observation",
        identifier: [{system: sys_id("observation"), value: local_key($key)}],
        status: "final",
        category: survey,
        code: {coding: [coding($a.g.system; $a.g.code; $a.g.display)], text: $a.g.text},
        subject: ref($patient),
        encounter: ref($encounter),
        performer: $performers,
        effectiveDateTime: $start,
        issued: $end,
        valueBoolean: $a.answer
      }
    | post_entry(full_url("Observation/\($key)"))
  ] as $tbc_observations

| [ select($t.status_tbc == "rujukan")
    | [ $tbc_answers[] | select(.answer == true) ] as $positive
    | {
        resourceType: "ServiceRequest",
        identifier: [{system: sys_id("servicerequest"), value: local_key("rujukan-tbc")}],
        status: "active",
        intent: "order",
        priority: "routine",
        # SNOMED CT 3457005 Patient referral: the code of SATUSEHAT's referral examples
        # (ANC and SARI use cases); rule 10060 allows SNOMED CT for ServiceRequest.code.
        code: {coding: [coding("http://snomed.info/sct"; "3457005"; "Patient referral")], text: "Rujukan pemeriksaan terduga TBC"},
        subject: (ref($patient) + {display: $p.nama}),
        encounter: ref($encounter),
        authoredOn: $end,
        requester: (ref($nakes) + {display: $r.nakes.nama}),
        # Who the person is referred to: SATUSEHAT's rule table makes performer mandatory
        # (rule 10377), so a referral without it is refused. The record names the destination
        # only in words (tujuan_rujukan, optional, sent as patientInstruction), which cannot
        # become a Reference, and names no health worker there (the Kamus's example is a
        # Practitioner; the table allows any reference). A referral found at a posyandu or
        # pustu goes to the sender's own puskesmas: performer is the sending Organization.
        performer: [{reference: "Organization/\($org)"}],
        reasonCode: [ $positive[]
                      | if .g.code != null and .g.system == "http://snomed.info/sct"
                        # rule 10064: reasonCode takes ICD-10, ICD-9-CM or SNOMED CT only
                        then {coding: [coding(.g.system; .g.code; .g.display)], text: .g.text}
                        else {text: .g.text} end ],
        reasonReference: [ $positive[] | select(.g.code != null)
                           | ref(full_url("Observation/skrining-tbc/\(.item)")) ],
        patientInstruction: (if $t.tujuan_rujukan then "Rujukan ke \($t.tujuan_rujukan) untuk pemeriksaan TBC" else null end)
      }
    | post_entry(full_url("ServiceRequest/rujukan-tbc"))
  ] as $tbc_referral

| {
    resourceType: "Bundle",
    type: "transaction",
    entry: ([$patient_entry, $nakes_entry, $encounter_entry, $condition_entry] + $observations + $tbc_observations
            + $immunizations + $vitamin_a + $obat_cacing + $tbc_referral)
  }
