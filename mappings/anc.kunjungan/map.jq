# anc.kunjungan → one SATUSEHAT transaction Bundle.
#
# Resources: the mother (Patient) and the examiner (Practitioner) as look-ups by NIK, the
# pregnancy's ANC EpisodeOfCare, the visit Encounter (with the ANC visit code K1A…K6 as a
# second identifier and a reference to the episode), one Condition per ICD-10 diagnosis, one
# Observation per finding (LOINC + UCUM; Kemkes codes where SATUSEHAT's ANC use case has
# them), the Td dose as an Immunization and the iron tablets (TTD) as a Medication (KFA), the
# MedicationRequest that prescribes them and the MedicationDispense that hands them over.
# Every resource carries http://sys-ids.kemkes.go.id/<kind>/<org> and a deterministic
# urn:uuid, so sending the record again is recognised upstream. Optional input that is
# absent becomes null here; gerbang removes nulls and empty elements from the output.
#
# The episode across visits. SATUSEHAT's ANC use case opens one EpisodeOfCare (type ANC,
# period.start = HPHT) at the first visit and attaches every later visit's Encounter to it
# (Encounter.episodeOfCare, rule 10430). A visit record alone cannot know the episode's
# SATUSEHAT id, so the facility sends a stable pregnancy id, `id_kehamilan`, on every visit of
# the pregnancy. Both the episode's identifier (http://sys-ids.kemkes.go.id/episode-of-care/
# <org> | id_kehamilan) and its fullUrl are derived from it, never from the visit id:
#   - Every visit, K1A / K1M included, carries the EpisodeOfCare as a conditional entry
#     (ifNoneExist identifier=<system>|<id_kehamilan>): upstream it resolves to the episode
#     already there instead of creating a second one, and the Encounter's urn:uuid reference
#     follows it. The visit that opens the pregnancy (anc-visit table: opens_episode, K1A/K1M)
#     normally creates it; because every entry carries the full resource, a pregnancy whose K1
#     was never sent through gerbang (the facility joined mid-pregnancy) still gets its
#     episode, once.
#   - The episode belongs to the pregnancy, not to one visit: a correction of a visit does not
#     rewrite it, and a cancelled visit — even a K1 — does not mark it entered-in-error, since
#     the later visits still point at it (the forwarder leaves conditional entries alone).
# The same id_kehamilan therefore gives the same episode fullUrl and identifier in every
# visit's Bundle (see examples anc-k1a-lengkap and anc-k3-beberapa-diagnosis).

def kfa: "http://sys-ids.kemkes.go.id/kfa";
def loinc($code; $display): coding("http://loinc.org"; $code; $display);
def category($code; $display): [concept("http://terminology.hl7.org/CodeSystem/observation-category"; $code; $display)];
def vital_signs: category("vital-signs"; "Vital Signs");
def exam: category("exam"; "Exam");
def survey: category("survey"; "Survey");
def laboratory: category("laboratory"; "Laboratory");
# HPHT and HPL are calendar dates, but SATUSEHAT wants every dateTime (EpisodeOfCare.period,
# Observation.valueDateTime: rules 10406, 10429) as YYYY-MM-DDThh:mm:ss+00:00, and its own ANC
# example writes midnight UTC. Midnight UTC keeps the calendar date readable; converting local
# midnight would move the date to the previous day (2025-12-01 WIB → 2025-11-30T17:00Z).
def date_as_datetime: "\(.)T00:00:00+00:00" | to_utc("WIB");

. as $r
| ($r.zona_waktu // "WIB") as $tz
| ($r.waktu_mulai | to_utc($tz)) as $start
| ($r.waktu_selesai | to_utc($tz)) as $end
| ($r.status_kunjungan_anc | lookup("anc-visit")) as $visit
| full_url("Patient") as $patient
| full_url("Practitioner") as $nakes
| full_url("Encounter") as $encounter
# The episode belongs to the pregnancy, not to this visit: its fullUrl is derived from the
# organization and id_kehamilan only ('#' never occurs in a local id, so it cannot collide
# with a full_url of any visit).
| ("urn:uuid:" + ("\($org)/\($record_type)#kehamilan/\($r.id_kehamilan)" | uuid5)) as $episode
| sys_id("episode-of-care") as $episode_system
| ({reference: "Location/\($location)", display: $r.unit}) as $where
| ($r.ibu) as $ibu
| ($r.kehamilan) as $k
| ($r.pemeriksaan) as $m
| ($r.lab // {}) as $lab

# One finding of this visit. $value is an object holding exactly one value[x].
| def observation($key; $category; $codings; $value; $interpretation):
    {
      resourceType: "Observation",
      identifier: [{system: sys_id("observation"), value: local_key($key)}],
      status: "final",
      category: $category,
      code: {coding: $codings},
      subject: ref($patient),
      encounter: ref($encounter),
      performer: [ref($nakes)],
      effectiveDateTime: $start,
      issued: $end
    }
    + $value
    + {interpretation: $interpretation}
    | post_entry(full_url("Observation/\($key)"));

  ({
    resourceType: "Patient",
    identifier: [{use: "official", system: "https://fhir.kemkes.go.id/id/nik", value: $ibu.nik}],
    active: true,
    name: [{use: "official", text: $ibu.nama}],
    gender: "female",
    birthDate: $ibu.tgl_lahir,
    address: (if $ibu.alamat or $ibu.kode_desa then [{
      use: "home",
      line: (if $ibu.alamat then [$ibu.alamat] else null end),
      extension: (if $ibu.kode_desa then [{
        url: "https://fhir.kemkes.go.id/r4/StructureDefinition/administrativeCode",
        extension: [
          {url: "province", valueCode: $ibu.kode_desa[0:2]},
          {url: "city", valueCode: $ibu.kode_desa[0:4]},
          {url: "district", valueCode: $ibu.kode_desa[0:6]},
          {url: "village", valueCode: $ibu.kode_desa},
          (if $ibu.rt then {url: "rt", valueCode: $ibu.rt} else null end),
          (if $ibu.rw then {url: "rw", valueCode: $ibu.rw} else null end)
        ]
      }] else null end)
    }] else null end)
  }
  | lookup_entry($patient; "identifier=https://fhir.kemkes.go.id/id/nik|\($ibu.nik)")
  ) as $patient_entry

| ({
    resourceType: "Practitioner",
    identifier: [{use: "official", system: "https://fhir.kemkes.go.id/id/nik", value: $r.pemeriksa.nik}],
    name: [{use: "official", text: $r.pemeriksa.nama}]
  }
  | lookup_entry($nakes; "identifier=https://fhir.kemkes.go.id/id/nik|\($r.pemeriksa.nik)")
  ) as $nakes_entry

| ($k.hpht | date_as_datetime) as $hpht
| ({
    resourceType: "EpisodeOfCare",
    identifier: [{system: $episode_system, value: $r.id_kehamilan}],
    status: "active",
    statusHistory: [{status: "active", period: {start: $hpht}}],
    type: [concept("http://terminology.kemkes.go.id/CodeSystem/episodeofcare-type"; "ANC"; "Antenatal Care")],
    patient: (ref($patient) + {display: $ibu.nama}),
    managingOrganization: {reference: "Organization/\($org)"},
    period: {start: $hpht}
  }
  | lookup_entry($episode; "identifier=\($episode_system)|\($r.id_kehamilan)")
  ) as $episode_entry

# Diagnoses: the primer one first, the others in the order sent; rank follows. SATUSEHAT
# refuses a finished Encounter without diagnosis ("Element not found: Encounter.diagnosis
# (RuleNumber: 10457)", staging 2026-09), so a visit sent without one is what it is: ICD-10
# Z34.9 Supervision of normal pregnancy, unspecified.
| (if ($r.diagnosa // []) == []
   then [{kd_penyakit: "Z34.9", nama: "Supervision of normal pregnancy, unspecified", jns_dx: "primer"}]
   else $r.diagnosa end) as $sent_diagnoses
| ([$sent_diagnoses | sort_by(if .jns_dx == "sekunder" then 1 else 0 end)
    | range(length) as $i | .[$i] + {rank: ($i + 1), key: "diagnosa/\(.[$i].kd_penyakit)"}]
  ) as $diagnoses

| ({
    resourceType: "Encounter",
    identifier: [
      {system: sys_id("encounter"), value: $local_id},
      {system: "http://terminology.kemkes.go.id/CodeSystem/episodeofcare/ANC", value: $r.status_kunjungan_anc}
    ],
    status: "finished",
    class: coding("http://terminology.hl7.org/CodeSystem/v3-ActCode"; "AMB"; "ambulatory"),
    subject: (ref($patient) + {display: $ibu.nama}),
    participant: [{
      type: [concept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType"; "ATND"; "attender")],
      individual: (ref($nakes) + {display: $r.pemeriksa.nama})
    }],
    period: {start: $start, end: $end},
    location: [{location: $where}],
    diagnosis: [$diagnoses[] | {
      condition: (ref(full_url("Condition/\(.key)")) + {display: .nama}),
      use: concept("http://terminology.hl7.org/CodeSystem/diagnosis-role"; "DD"; "Discharge diagnosis"),
      rank: .rank
    }],
    statusHistory: [
      {status: "arrived", period: {start: $start, end: $start}},
      {status: "in-progress", period: {start: $start, end: $end}},
      {status: "finished", period: {start: $end, end: $end}}
    ],
    serviceProvider: {reference: "Organization/\($org)"},
    episodeOfCare: [ref($episode)]
  }
  | post_entry($encounter)
  ) as $encounter_entry

| [ $diagnoses[]
    | . as $d
    | {
        resourceType: "Condition",
        identifier: [{system: sys_id("condition"), value: local_key($d.key)}],
        clinicalStatus: concept("http://terminology.hl7.org/CodeSystem/condition-clinical"; "active"; "Active"),
        verificationStatus: concept("http://terminology.hl7.org/CodeSystem/condition-ver-status"; "confirmed"; "Confirmed"),
        category: [concept("http://terminology.hl7.org/CodeSystem/condition-category"; "encounter-diagnosis"; "Encounter Diagnosis")],
        code: concept("http://hl7.org/fhir/sid/icd-10"; $d.kd_penyakit; $d.nama),
        subject: (ref($patient) + {display: $ibu.nama}),
        encounter: ref($encounter),
        recordedDate: $end,
        recorder: ref($nakes)
      }
    | post_entry(full_url("Condition/\($d.key)"))
  ] as $conditions

| ($m.tekanan_darah | split("/") | map(tonumber)) as $bp
| (if $m.presentasi then ($m.presentasi | lookup("anc-fetal-presentation")).coding else null end) as $presentation
| [
    (if $k.gravida != null then
      observation("gravida"; survey; [loinc("11996-6"; "[#] Pregnancies")]; {valueInteger: $k.gravida}; null)
     else empty end),
    (if $k.paritas != null then
      observation("paritas"; survey; [loinc("11977-6"; "[#] Parity")]; {valueInteger: $k.paritas}; null)
     else empty end),
    (if $k.abortus != null then
      observation("abortus"; survey; [loinc("69043-8"; "Other pregnancy outcomes #")]; {valueInteger: $k.abortus}; null)
     else empty end),
    observation("hpht"; survey; [loinc("8665-2"; "Last menstrual period start date")]; {valueDateTime: $hpht}; null),
    (if $k.hpl then
      observation("hpl"; survey; [loinc("11778-8"; "Delivery date Estimated")]; {valueDateTime: ($k.hpl | date_as_datetime)}; null)
     else empty end),
    (if $m.umur_kehamilan_minggu != null then
      observation("umur-kehamilan"; exam; [loinc("18185-9"; "Gestational age")]; {valueQuantity: ucum($m.umur_kehamilan_minggu; "wk")}; null)
     else empty end),
    (if $k.bb_sebelum_hamil then
      observation("bb-sebelum-hamil"; survey; [loinc("56077-1"; "Body weight --pre current pregnancy")]; {valueQuantity: ucum($k.bb_sebelum_hamil; "kg")}; null)
     else empty end),
    (if $k.tinggi_badan then
      observation("tinggi-badan"; vital_signs; [loinc("8302-2"; "Body height")]; {valueQuantity: ucum($k.tinggi_badan; "cm")}; null)
     else empty end),
    observation("berat-badan"; vital_signs; [loinc("29463-7"; "Body weight")]; {valueQuantity: ucum($m.berat_badan; "kg")}; null),
    (if $m.lila then
      observation("lila"; exam;
        [loinc("56072-2"; "Circumference Mid upper arm - right"),
         coding("http://terminology.kemkes.go.id/CodeSystem/anc-custom-codes"; "ANC.SS.DE3"; "Lingkar Lengan Atas (LILA)")];
        {valueQuantity: ucum($m.lila; "cm")};
        ($m.status_lila | lookup("anc-lila-status")
         | [concept("http://terminology.kemkes.go.id/CodeSystem/clinical-term"; .code; .display)]))
     else empty end),
    observation("sistole"; vital_signs; [loinc("8480-6"; "Systolic blood pressure")]; {valueQuantity: ucum($bp[0]; "mm[Hg]")}; null),
    observation("diastole"; vital_signs; [loinc("8462-4"; "Diastolic blood pressure")]; {valueQuantity: ucum($bp[1]; "mm[Hg]")}; null),
    (if $m.tinggi_fundus_cm then
      observation("tinggi-fundus"; exam; [loinc("11881-0"; "Uterus Fundal height Tape measure")]; {valueQuantity: ucum($m.tinggi_fundus_cm; "cm")}; null)
     else empty end),
    (if $m.djj then
      observation("djj"; exam; [loinc("55283-6"; "Fetal Heart rate")]; {valueQuantity: ucum($m.djj; "/min")}; null)
     else empty end),
    # Only presentations with a code are sent (table anc-fetal-presentation).
    (if $presentation then
      observation("presentasi"; exam; [loinc("72155-5"; "Position in womb Fetus [RHEA]")]; {valueCodeableConcept: {coding: [$presentation]}}; null)
     else empty end),
    (if $lab.hb then
      observation("hb"; laboratory; [loinc("718-7"; "Hemoglobin [Mass/volume] in Blood")]; {valueQuantity: ucum($lab.hb; "g/dL")}; null)
     else empty end),
    (if $lab.protein_urin then
      observation("protein-urin"; laboratory; [loinc("5804-0"; "Protein [Mass/volume] in Urine by Test strip")];
        {valueCodeableConcept: ($lab.protein_urin | lookup("anc-urine-protein") | {coding: [loinc(.code; .display)]})}; null)
     else empty end)
  ] as $observations

| [ $r.imunisasi_td // empty
    | select(.diberikan)
    | . as $i
    | ("Td" | lookup("antigen")) as $ag
    | ($i.status_sesudah | ltrimstr("T") | tonumber) as $dose
    | "imunisasi/Td/\($dose)" as $key
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
        route: (($i.rute // "IM") | lookup("vaccine-route") | concept("http://www.whocc.no/atc"; .code; .display)),
        doseQuantity: (if $i.dosis_ml then ucum($i.dosis_ml; "mL") else null end),
        performer: [{
          function: concept("http://terminology.hl7.org/CodeSystem/v2-0443"; "AP"; "Administering Provider"),
          actor: ref($nakes)
        }],
        reasonCode: ["IM-WUS" | . as $c | lookup("immunization-reason") | concept(.system; $c; .display)],
        fundingSource: (if $i.sumber_dana then
          concept("http://terminology.kemkes.go.id/CodeSystem/immunization-fundingSource"; $i.sumber_dana;
                  $i.sumber_dana | lookup("immunization-funding").display) else null end),
        protocolApplied: [{doseNumberPositiveInt: $dose}]
      }
    | post_entry(full_url("Immunization/\($key)"))
  ] as $immunizations

# The iron tablets, as rawat-jalan sends a prescription line: a Medication (KFA) and the
# MedicationRequest that orders it, and — the tablets being handed over at the visit — the
# MedicationDispense. SATUSEHAT's rule table requires the dispense to reference both
# (medicationReference, rule 10138 HasToReferMedication; authorizingPrescription, rule 10393
# HasToReferMedicationRequest); a Medication reference replaces medicationCodeableConcept
# (medication[x] takes one). The visit is the prescription: the examiner orders, the visit's
# end is when. TTD are tablets (quantity TAB), taken by mouth. The request names no
# reasonReference: the tablets are given for the pregnancy itself, not for the visit's primary
# diagnosis (in anc-k3-beberapa-diagnosis that is pre-eclampsia).
| [ $r.ttd // empty
    | . as $t
    | full_url("Medication/ttd") as $med
    | full_url("MedicationRequest/ttd") as $prescription
    | local_key("ttd") as $no_resep
    | ("tablet" | lookup("rawat-jalan-bentuk-sediaan")) as $form
    | {value: $t.jumlah, unit: "TAB", system: "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm", code: "TAB"} as $tablets
    | (if $t.signa then dosage($t.signa; "tablet"; concept("http://www.whocc.no/atc"; "O"; "Oral")) else null end) as $dosage
    | ({
        resourceType: "Medication",
        identifier: [{use: "official", system: sys_id("medication"), value: local_key("obat/ttd")}],
        extension: [{
          url: "https://fhir.kemkes.go.id/r4/StructureDefinition/MedicationType",
          valueCodeableConcept: ("NC" | lookup("rawat-jalan-medication-type")
            | concept("http://terminology.kemkes.go.id/CodeSystem/medication-type"; .code; .display))
        }],
        code: {coding: [{system: kfa, code: $t.kfa_produk, display: $t.nama}], text: $t.nama},
        status: "active",
        form: concept("http://terminology.kemkes.go.id/CodeSystem/medication-form"; $form.code; $form.display)
      }
      | post_entry($med)),
      ({
        resourceType: "MedicationRequest",
        identifier: [
          {use: "official", system: sys_id("prescription"), value: $no_resep},
          {use: "official", system: sys_id("prescription-item"), value: "\($no_resep)-1"}
        ],
        status: "completed",
        intent: "order",
        category: [concept("http://terminology.hl7.org/CodeSystem/medicationrequest-category"; "outpatient"; "Outpatient")],
        medicationReference: (ref($med) + {display: $t.nama}),
        subject: (ref($patient) + {display: $ibu.nama}),
        encounter: ref($encounter),
        authoredOn: $end,
        requester: (ref($nakes) + {display: $r.pemeriksa.nama}),
        dosageInstruction: $dosage,
        dispenseRequest: {
          quantity: $tablets,
          performer: {reference: "Organization/\($org)"}
        }
      }
      | post_entry($prescription)),
      ({
        resourceType: "MedicationDispense",
        identifier: [{system: sys_id("medicationdispense"), value: local_key("ttd")}],
        status: "completed",
        category: concept("http://terminology.hl7.org/fhir/CodeSystem/medicationdispense-category"; "outpatient"; "Outpatient"),
        medicationReference: (ref($med) + {display: $t.nama}),
        subject: (ref($patient) + {display: $ibu.nama}),
        context: ref($encounter),
        performer: [{actor: (ref($nakes) + {display: $r.pemeriksa.nama})}],
        location: $where,
        authorizingPrescription: [ref($prescription)],
        quantity: $tablets,
        whenHandedOver: $end,
        dosageInstruction: $dosage
      }
      | post_entry(full_url("MedicationDispense/ttd")))
  ] as $iron_tablets

| {
    resourceType: "Bundle",
    type: "transaction",
    entry: ([$patient_entry, $nakes_entry, $episode_entry, $encounter_entry]
            + $conditions + $observations + $immunizations + $iron_tablets)
  }
