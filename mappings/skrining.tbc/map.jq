# skrining.tbc → one SATUSEHAT transaction Bundle.
#
# Resources: Patient and Practitioner as look-ups by NIK, the screening Encounter (how the
# person was found as hospitalization.admitSource, a Kemkes clinical-term EHA code) with its
# diagnosis, the Condition it names (ICD-10 Z11.1, see below), one
# Observation per answered screening item whose code is confirmed (code from the
# tbc-gejala table, answer as valueBoolean, category survey), and a referral ServiceRequest
# when the result is `rujukan`. Items without a confirmed code (tbc-gejala `code: null`) are
# not sent as Observations; a referral still names them in reasonCode.text. The result
# itself (tidak_terindikasi / risiko) has no SATUSEHAT code and is not sent.
# Optional input that is absent becomes null here; gerbang removes nulls and empty
# elements from the output.

def snomed: "http://snomed.info/sct";
def clinical_term: "http://terminology.kemkes.go.id/CodeSystem/clinical-term";
def survey: [concept("http://terminology.hl7.org/CodeSystem/observation-category"; "survey"; "Survey")];
# The screening items, in the order they are sent.
def tbc_items: ["batuk_menerus", "demam_2_minggu", "bb_tetap_turun_2_bulan", "bb_turun", "lesu",
                "keringat_malam", "batuk_darah", "sesak_napas", "kontak_tbc"];
# The visit's diagnosis. SATUSEHAT refuses a finished Encounter without Encounter.diagnosis
# (rule 10457: staging answered "Element not found: Encounter.diagnosis (RuleNumber: 10457)";
# an in-progress one without it is accepted). A screening record carries no diagnosis — the
# input has no such field, and its result (tidak_terindikasi / risiko / rujukan) says whether
# to examine further, not what the person has — so the visit gets the ICD-10 code of what it
# is, as a Condition (encounter-diagnosis) in Encounter.diagnosis (use DD, rank 1), built the
# way anc.kunjungan builds its diagnoses: Z11.1 for every result, a referral included (the
# referred person is a presumptive case, not a TB diagnosis).
def visit_diagnosis: {code: "Z11.1", display: "Special screening examination for respiratory tuberculosis"};

. as $r
| ($r.zona_waktu // "WIB") as $tz
| ($r.waktu_mulai | to_utc($tz)) as $start
| ($r.waktu_selesai | to_utc($tz)) as $end
| full_url("Patient") as $patient
| full_url("Practitioner") as $nakes
| full_url("Encounter") as $encounter
| ({reference: "Location/\($location)", display: $r.nama_lokasi}) as $where
| (visit_diagnosis + {key: "diagnosa/\(visit_diagnosis.code)"}) as $dx
| full_url("Condition/\($dx.key)") as $condition

| ($r.peserta) as $p
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

| ({
    resourceType: "Practitioner",
    identifier: [{use: "official", system: "https://fhir.kemkes.go.id/id/nik", value: $r.nakes.nik}],
    name: [{use: "official", text: $r.nakes.nama}]
  }
  | lookup_entry($nakes; "identifier=https://fhir.kemkes.go.id/id/nik|\($r.nakes.nik)")
  ) as $nakes_entry

| ({
    resourceType: "Encounter",
    identifier: [{system: sys_id("encounter"), value: $local_id}],
    status: "finished",
    class: coding("http://terminology.hl7.org/CodeSystem/v3-ActCode"; "AMB"; "ambulatory"),
    subject: (ref($patient) + {display: $p.nama}),
    participant: [{
      type: [concept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType"; "ATND"; "attender")],
      individual: (ref($nakes) + {display: $r.nakes.nama})
    }],
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
    hospitalization: (if $r.sumber_penemuan then {
      admitSource: ($r.sumber_penemuan | lookup("tbc-sumber-penemuan") | concept(clinical_term; .code; .display))
    } else null end),
    serviceProvider: {reference: "Organization/\($org)"}
  }
  | post_entry($encounter)
  ) as $encounter_entry

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
    recorder: ref($nakes)
  }
  | post_entry($condition)
  ) as $condition_entry

| ($r.skrining_tbc) as $t
# Every answered item with its code-table entry.
| [ tbc_items[] as $item
    | select($t[$item] != null)
    | {item: $item, answer: $t[$item], g: ($item | lookup("tbc-gejala"))} ] as $answers

| [ $answers[]
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
        performer: [ref($nakes)],
        effectiveDateTime: $start,
        issued: $end,
        valueBoolean: $a.answer
      }
    | post_entry(full_url("Observation/\($key)"))
  ] as $observations

| [ select($t.status_tbc == "rujukan")
    | [ $answers[] | select(.answer == true) ] as $positive
    | {
        resourceType: "ServiceRequest",
        identifier: [{system: sys_id("servicerequest"), value: local_key("rujukan-tbc")}],
        status: "active",
        intent: "order",
        priority: "routine",
        # SNOMED CT 3457005 Patient referral: the code of SATUSEHAT's referral examples
        # (ANC and SARI use cases); rule 10060 allows SNOMED CT for ServiceRequest.code.
        code: {coding: [coding(snomed; "3457005"; "Patient referral")], text: "Rujukan pemeriksaan terduga TBC"},
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
  ] as $referral

| {
    resourceType: "Bundle",
    type: "transaction",
    entry: ([$patient_entry, $nakes_entry, $encounter_entry, $condition_entry] + $observations + $referral)
  }
