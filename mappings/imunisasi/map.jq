# imunisasi → one SATUSEHAT transaction Bundle.
#
# Resources: Patient and Practitioner as look-ups by NIK, the visit Encounter with its
# diagnosis, the Condition it names (ICD-10 Z26.9, see below), and one Immunization per dose
# of the record:
# - given now by the health worker (status completed, primarySource true, performer AP =
#   the health worker, lot and expiry date, route, site);
# - from history (status completed, primarySource false, reportOrigin from the
#   imunisasi-sumber-riwayat table, performer EP = the sender's Organization, dated when
#   it was given), after SATUSEHAT's kader example (satusehat.md §4);
# - postponed or not given (status not-done with a Kemkes immunization-statusReason,
#   performer OP = the health worker), after SATUSEHAT's "Tunda" / "Tidak Diberikan"
#   examples.
# vaccineCode: the KFA product when known, plus the vaccine group (VGxx) and CVX of the
# antigen table. Optional input that is absent becomes null here; gerbang removes nulls and
# empty elements from the output.

def kfa: "http://sys-ids.kemkes.go.id/kfa";
def v2_0443($code; $display): concept("http://terminology.hl7.org/CodeSystem/v2-0443"; $code; $display);

# The visit's diagnosis. SATUSEHAT refuses a finished Encounter without Encounter.diagnosis
# (rule 10457: staging answered "Element not found: Encounter.diagnosis (RuleNumber: 10457)";
# an in-progress one without it is accepted). An immunization record carries no diagnosis —
# the input has no such field — so the visit gets the ICD-10 code of what it is, as a
# Condition (encounter-diagnosis) in Encounter.diagnosis (use DD, rank 1), built the way
# anc.kunjungan builds its diagnoses. Z26.9 "Need for immunization against unspecified
# infectious disease" for every visit: the specific codes (Z23–Z27) name one antigen or one
# combination, but a visit holds several doses of different antigens (DPT-HB-Hib + OPV + PCV),
# some from history or not given, which no single specific code describes.
def visit_diagnosis: {code: "Z26.9", display: "Need for immunization against unspecified infectious disease"};

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

| [ $r.imunisasi[]
    | . as $i
    | ($i.antigen | lookup("antigen")) as $ag
    | ($i.status | lookup("imunisasi-status")) as $st
    | "imunisasi/\($i.antigen)/\($i.dosis_ke)" as $key
    | (if $i.status == "riwayat"
       then ($i.tanggal_pemberian | if length == 10 then . else to_utc($tz) end)
       else $start end) as $when
    | {
        resourceType: "Immunization",
        identifier: [{system: sys_id("immunization"), value: local_key($key)}],
        status: $st.status,
        statusReason: (if $st.statusReason then
          concept("http://terminology.kemkes.go.id/CodeSystem/immunization-statusReason";
                  $st.statusReason.code; $st.statusReason.display) else null end),
        vaccineCode: {
          coding: ((if $i.kfa_produk then [{system: kfa, code: $i.kfa_produk}] else [] end)
                   + [$ag.vg[] | {system: kfa, code: .code, display: .display}]
                   + (if $ag.cvx then [coding("http://hl7.org/fhir/sid/cvx"; $ag.cvx.code; $ag.cvx.display)] else [] end)),
          text: $ag.display
        },
        patient: (ref($patient) + {display: $p.nama}),
        encounter: ref($encounter),
        occurrenceDateTime: $when,
        recorded: $end,
        primarySource: $st.primarySource,
        reportOrigin: (if $i.status == "riwayat" then
          ($i.sumber_riwayat | lookup("imunisasi-sumber-riwayat")
           | concept("http://terminology.hl7.org/CodeSystem/immunization-origin"; .code; .display))
          else null end),
        location: $where,
        lotNumber: $i.no_batch,
        expirationDate: $i.kadaluarsa,
        site: (if $i.lokasi_suntik then ($i.lokasi_suntik | lookup("injection-site")) as $site
               | concept("http://terminology.hl7.org/CodeSystem/v3-ActSite"; $site.code; $site.display) else null end),
        route: (if $i.rute then ($i.rute | lookup("vaccine-route")) as $rt
                | concept("http://www.whocc.no/atc"; $rt.code; $rt.display) else null end),
        doseQuantity: (if $i.dosis_ml then ucum($i.dosis_ml; "mL") else null end),
        performer: [
          if $i.status == "riwayat" then {
            function: v2_0443("EP"; "Entering Provider (probably not the same as transcriptionist?)"),
            actor: {reference: "Organization/\($org)"}
          } elif $st.status == "not-done" then {
            function: v2_0443("OP"; "Ordering Provider"),
            actor: (ref($nakes) + {display: $r.nakes.nama})
          } else {
            function: v2_0443("AP"; "Administering Provider"),
            actor: (ref($nakes) + {display: $r.nakes.nama})
          } end
        ],
        note: (if $i.catatan then [{text: $i.catatan}] else null end),
        reasonCode: [ ($i.jenis, $i.waktu) | select(. != null) | . as $c | lookup("immunization-reason")
                      | concept(.system; $c; .display) ],
        fundingSource: (if $i.sumber_dana then
          concept("http://terminology.kemkes.go.id/CodeSystem/immunization-fundingSource"; $i.sumber_dana;
                  $i.sumber_dana | lookup("immunization-funding").display) else null end),
        protocolApplied: [{doseNumberPositiveInt: $i.dosis_ke}]
      }
    | post_entry(full_url("Immunization/\($key)"))
  ] as $immunizations

| {
    resourceType: "Bundle",
    type: "transaction",
    entry: ([$patient_entry, $nakes_entry, $encounter_entry, $condition_entry] + $immunizations)
  }
