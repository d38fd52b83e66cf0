# rawat-jalan → one SATUSEHAT transaction Bundle.
#
# Resources: Patient and Practitioner as look-ups by NIK (the forwarder turns them into
# Patient/{IHS} and Practitioner/{IHS} references); the visit Encounter with its whole
# lifecycle (arrived at registration → in-progress at the examination → finished at
# discharge), its ranked diagnoses and how the patient left; one Condition per ICD-10
# diagnosis; one Observation per vital sign (LOINC + UCUM); one Procedure per ICD-9-CM
# procedure; per prescribed drug a Medication (KFA) and a MedicationRequest whose dosage is
# parsed from the signa; and a ServiceRequest when the visit ends in a referral. Every
# resource carries http://sys-ids.kemkes.go.id/<kind>/<org> and a deterministic urn:uuid,
# so sending the record again is recognised upstream. Optional input that is absent becomes
# null here; gerbang removes nulls and empty elements from the output.

def kfa: "http://sys-ids.kemkes.go.id/kfa";
def loinc($code; $display): concept("http://loinc.org"; $code; $display);
def category($code; $display): [concept("http://terminology.hl7.org/CodeSystem/observation-category"; $code; $display)];
def vital_signs: category("vital-signs"; "Vital Signs");
def exam: category("exam"; "Exam");
def laboratory: category("laboratory"; "Laboratory");

# The KFA coding of a prescription line or compound ingredient: the record's own kfa_code,
# else the facility formulary by its drug code (an unknown drug code is an error naming
# mappings/tables/rawat-jalan-obat.json).
def kfa_coding:
  if .kfa_code then {system: kfa, code: .kfa_code, display: .nama_obat}
  else (.kd_obat | lookup("rawat-jalan-obat")) as $o | {system: kfa, code: $o.kfa, display: $o.display}
  end;

. as $r
| ($r.zona_waktu // "WIB") as $tz
| ($r.waktu_daftar | to_utc($tz)) as $daftar
| ($r.waktu_periksa | to_utc($tz)) as $periksa
| ($r.waktu_pulang | to_utc($tz)) as $pulang
| if $periksa < $daftar then error("gerbang: waktu_periksa \($r.waktu_periksa) is before waktu_daftar \($r.waktu_daftar); the examination cannot start before registration") else . end
| if $pulang <= $periksa then error("gerbang: waktu_pulang \($r.waktu_pulang) must be after waktu_periksa \($r.waktu_periksa)") else . end
| full_url("Patient") as $patient
| full_url("Practitioner") as $nakes
| full_url("Encounter") as $encounter
| ($r.pasien) as $p
| ($r.dokter) as $d
| (ref($patient) + {display: $p.nama}) as $subject
| (ref($nakes) + {display: $d.nama}) as $by

# Diagnoses: the primary first (rank 1), then the secondary ones in record order.
| ($r.diagnosa | map(.kd_penyakit) | group_by(.) | map(select(length > 1) | .[0])) as $twice
| if $twice != [] then error("gerbang: diagnosa lists \($twice | join(", ")) more than once; send each ICD-10 code once") else . end
| ($r.diagnosa | map(select(.jns_dx == "primer")) | length) as $primaries
| if $primaries != 1 then error("gerbang: diagnosa needs exactly one primary diagnosis (jns_dx \"primer\"); found \($primaries)") else . end
| ($r.diagnosa | map(select(.jns_dx == "primer")) + map(select(.jns_dx == "sekunder"))) as $dx0
| [ range(0; $dx0 | length) as $i | $dx0[$i] + {rank: ($i + 1), url: full_url("Condition/\($dx0[$i].kd_penyakit)")} ] as $dx
| ($dx[0]) as $primary
| (ref($primary.url) + {display: $primary.nama}) as $primary_ref

| ($r.tindakan // [] | map(.kd_tindakan) | group_by(.) | map(select(length > 1) | .[0])) as $twice
| if $twice != [] then error("gerbang: tindakan lists \($twice | join(", ")) more than once; send each ICD-9-CM code once with its qty") else . end

| (if $p.nik then {system: "https://fhir.kemkes.go.id/id/nik", value: $p.nik}
   else {system: "https://fhir.kemkes.go.id/id/nik-ibu", value: $p.nik_ibu} end) as $pid
| ({
    resourceType: "Patient",
    identifier: [{use: "official"} + $pid],
    active: true,
    name: [{use: "official", text: $p.nama}],
    gender: ($p.jenis_kelamin | lookup("sex")),
    birthDate: $p.tgl_lahir,
    multipleBirthInteger: (if $p.nik then null else $p.kelahiran_ke end),
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
    identifier: [{use: "official", system: "https://fhir.kemkes.go.id/id/nik", value: $d.nik}],
    name: [{use: "official", text: $d.nama}]
  }
  | lookup_entry($nakes; "identifier=https://fhir.kemkes.go.id/id/nik|\($d.nik)")
  ) as $nakes_entry

| ({
    resourceType: "Encounter",
    identifier: [{system: sys_id("encounter"), value: $local_id}],
    status: "finished",
    class: coding("http://terminology.hl7.org/CodeSystem/v3-ActCode"; "AMB"; "ambulatory"),
    subject: $subject,
    participant: [{
      type: [concept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType"; "ATND"; "attender")],
      individual: $by
    }],
    period: {start: $daftar, end: $pulang},
    location: [{location: {reference: "Location/\($location)", display: $r.nama_unit}}],
    diagnosis: [ $dx[] | {
      condition: (ref(.url) + {display: .nama}),
      use: concept("http://terminology.hl7.org/CodeSystem/diagnosis-role"; "DD"; "Discharge diagnosis"),
      rank: .rank
    } ],
    statusHistory: [
      {status: "arrived", period: {start: $daftar, end: $periksa}},
      {status: "in-progress", period: {start: $periksa, end: $pulang}},
      {status: "finished", period: {start: $pulang, end: $pulang}}
    ],
    hospitalization: (if $r.status_pulang then
      ($r.status_pulang | lookup("discharge-disposition")) as $dd
      | {dischargeDisposition: {
          coding: [coding("http://terminology.hl7.org/CodeSystem/discharge-disposition"; $dd.code; $dd.display)],
          text: $dd.text
        }}
      else null end),
    serviceProvider: {reference: "Organization/\($org)"}
  }
  | post_entry($encounter)
  ) as $encounter_entry

| [ $dx[]
    | . as $c
    | {
        resourceType: "Condition",
        identifier: [{system: sys_id("condition"), value: local_key("diagnosa/\(.kd_penyakit)")}],
        clinicalStatus: concept("http://terminology.hl7.org/CodeSystem/condition-clinical"; "active"; "Active"),
        verificationStatus: concept("http://terminology.hl7.org/CodeSystem/condition-ver-status"; "confirmed"; "Confirmed"),
        category: [concept("http://terminology.hl7.org/CodeSystem/condition-category"; "encounter-diagnosis"; "Encounter Diagnosis")],
        code: concept("http://hl7.org/fhir/sid/icd-10"; .kd_penyakit; .nama),
        subject: $subject,
        encounter: ref($encounter),
        recordedDate: $pulang,
        recorder: $by,
        note: (if .jns_kasus == "baru" then [{text: "Kasus baru"}]
               elif .jns_kasus == "lama" then [{text: "Kasus lama"}] else null end)
      }
    | post_entry($c.url)
  ] as $conditions

# One measurement of this visit.
| def observation($key; $category; $code; $value):
    {
      resourceType: "Observation",
      identifier: [{system: sys_id("observation"), value: local_key("ttv/\($key)")}],
      status: "final",
      category: $category,
      code: $code,
      subject: ref($patient),
      encounter: ref($encounter),
      performer: [ref($nakes)],
      effectiveDateTime: $periksa,
      issued: $pulang
    }
    + $value
    | post_entry(full_url("Observation/\($key)"));

  ($r.ttv // {}) as $v
| [
    (if $v.kesadaran then
      ($v.kesadaran | lookup("consciousness")) as $k
      | observation("kesadaran"; exam; loinc("67775-7"; "Level of responsiveness");
          if $k.snomed then {valueCodeableConcept: {coding: [coding("http://snomed.info/sct"; $k.snomed.code; $k.snomed.display)], text: $k.text}}
          else {valueString: $k.text} end)
     else empty end),
    (if $v.sistole then observation("sistole"; vital_signs; loinc("8480-6"; "Systolic blood pressure");
      {valueQuantity: ucum($v.sistole; "mm[Hg]")}) else empty end),
    (if $v.diastole then observation("diastole"; vital_signs; loinc("8462-4"; "Diastolic blood pressure");
      {valueQuantity: ucum($v.diastole; "mm[Hg]")}) else empty end),
    (if $v.nadi then observation("nadi"; vital_signs; loinc("8867-4"; "Heart rate");
      {valueQuantity: ucum($v.nadi; "/min")}) else empty end),
    (if $v.nafas then observation("nafas"; vital_signs; loinc("9279-1"; "Respiratory rate");
      {valueQuantity: ucum($v.nafas; "/min")}) else empty end),
    (if $v.suhu then observation("suhu"; vital_signs; loinc("8310-5"; "Body temperature");
      {valueQuantity: ucum($v.suhu; "Cel")}) else empty end),
    (if $v.berat_badan then observation("berat-badan"; vital_signs; loinc("29463-7"; "Body weight");
      {valueQuantity: ucum($v.berat_badan; "kg")}) else empty end),
    (if $v.tinggi_badan then observation("tinggi-badan"; vital_signs; loinc("8302-2"; "Body height");
      {valueQuantity: ucum($v.tinggi_badan; "cm")}) else empty end),
    (if $v.lingkar_perut then observation("lingkar-perut"; vital_signs; loinc("8280-0"; "Waist Circumference at umbilicus by Tape measure");
      {valueQuantity: ucum($v.lingkar_perut; "cm")}) else empty end),
    (if $v.gds then observation("gds"; laboratory; loinc("2339-0"; "Glucose [Mass/volume] in Blood");
      {valueQuantity: ucum($v.gds; "mg/dL")}) else empty end)
  ] as $observations

| [ ($r.tindakan // [])[]
    | {
        resourceType: "Procedure",
        identifier: [{system: sys_id("procedure"), value: local_key("tindakan/\(.kd_tindakan)")}],
        status: "completed",
        code: concept("http://hl7.org/fhir/sid/icd-9-cm"; .kd_tindakan; .nama),
        subject: $subject,
        encounter: ref($encounter),
        performedPeriod: {
          start: (if .waktu_mulai then .waktu_mulai | to_utc($tz) else $periksa end),
          end: (if .waktu_selesai then .waktu_selesai | to_utc($tz) else $pulang end)
        },
        performer: [{actor: $by}]
      }
    | post_entry(full_url("Procedure/\(.code.coding[0].code)"))
  ] as $procedures

# Prescription lines: per drug a Medication and the MedicationRequest that orders it. The
# item number is the line's position among the lines of the same prescription (no_resep).
| ($r.resep // []) as $resep
| [ range(0; $resep | length) as $i
    | $resep[$i] as $o
    | ([ $resep[0:$i][] | select(.no_resep == $o.no_resep) ] | length + 1) as $n
    | "\($o.no_resep)/\($n)" as $key
    | full_url("Medication/\($key)") as $med
    | ($o.racikan // false) as $compound
    | (if $compound or $o.kfa_code then null else $o.kd_obat | lookup("rawat-jalan-obat") end) as $formulary
    | (($o.bentuk_sediaan // $formulary.bentuk_sediaan) as $b
       | if $b then $b | lookup("rawat-jalan-bentuk-sediaan") else null end) as $form
    | (if $o.indikasi then
         ([ $dx[] | select(.kd_penyakit == $o.indikasi) ] | first // null) as $c
         | if $c == null then error("gerbang: resep[\($i)].indikasi \($o.indikasi) is not one of the diagnoses of this visit (diagnosa[].kd_penyakit)")
           else ref($c.url) + {display: $c.nama} end
       else $primary_ref end) as $reason
    | ({
        resourceType: "Medication",
        identifier: [{use: "official", system: sys_id("medication"), value: local_key("obat/\($key)")}],
        extension: [{
          url: "https://fhir.kemkes.go.id/r4/StructureDefinition/MedicationType",
          valueCodeableConcept: (((if $compound then $o.tipe_racikan else "NC" end) | lookup("rawat-jalan-medication-type")) as $t
            | concept("http://terminology.kemkes.go.id/CodeSystem/medication-type"; $t.code; $t.display))
        }],
        code: (if $compound then {text: $o.nama_obat} else {coding: [$o | kfa_coding], text: $o.nama_obat} end),
        status: "active",
        form: (if $form then concept("http://terminology.kemkes.go.id/CodeSystem/medication-form"; $form.code; $form.display) else null end),
        ingredient: (if $compound then [ $o.komposisi[] | {itemCodeableConcept: {coding: [kfa_coding], text: .nama_obat}, isActive: true} ] else null end)
      }
      | post_entry($med)),
      ({
        resourceType: "MedicationRequest",
        identifier: [
          {use: "official", system: sys_id("prescription"), value: $o.no_resep},
          {use: "official", system: sys_id("prescription-item"), value: "\($o.no_resep)-\($n)"}
        ],
        status: "active",
        intent: "order",
        category: [concept("http://terminology.hl7.org/CodeSystem/medicationrequest-category"; "outpatient"; "Outpatient")],
        medicationReference: (ref($med) + {display: $o.nama_obat}),
        subject: $subject,
        encounter: ref($encounter),
        authoredOn: (if $o.waktu_resep then $o.waktu_resep | to_utc($tz) else $pulang end),
        requester: $by,
        reasonReference: [$reason],
        dosageInstruction: dosage($o.signa; $o.satuan;
          if $form.oral then concept("http://www.whocc.no/atc"; "O"; "Oral") else null end),
        dispenseRequest: {
          quantity: unit_quantity($o.jumlah; $o.satuan),
          performer: {reference: "Organization/\($org)"}
        }
      }
      | post_entry(full_url("MedicationRequest/\($key)")))
  ] as $prescriptions

| [ $r.rujukan // empty
    | . as $j
    | {
        "ICD-9-CM": "http://hl7.org/fhir/sid/icd-9-cm",
        "LOINC": "http://loinc.org",
        "SNOMED-CT": "http://snomed.info/sct",
        "KEMKES-EXAMINATION": "http://terminology.kemkes.go.id/CodeSystem/examination"
      } as $systems
    | ("Rujukan ke " + ([$j.poli_tujuan, $j.tujuan] | map(select(. != null)) | join(", "))) as $what
    | {
        resourceType: "ServiceRequest",
        identifier: [{system: sys_id("servicerequest"), value: ($j.no_rujukan // local_key("rujukan"))}],
        status: "active",
        intent: "order",
        priority: ($j.prioritas // "routine"),
        code: (if $j.layanan then concept($systems[$j.layanan.sistem]; $j.layanan.kode; $j.layanan.nama) + {text: $what}
               else {text: $what} end),
        subject: $subject,
        encounter: ref($encounter),
        occurrenceDateTime: (if $j.waktu_rencana then $j.waktu_rencana | to_utc($tz) else null end),
        authoredOn: (if $j.waktu_rujukan then $j.waktu_rujukan | to_utc($tz) else $pulang end),
        requester: $by,
        performer: [{display: $j.tujuan}],
        locationCode: [{text: ([$j.poli_tujuan, $j.tujuan] | map(select(. != null)) | join(", "))}],
        reasonReference: [$primary_ref],
        note: (if $j.alasan then [{text: $j.alasan}] else null end)
      }
    | post_entry(full_url("ServiceRequest/rujukan"))
  ] as $referral

| {
    resourceType: "Bundle",
    type: "transaction",
    entry: ([$patient_entry, $nakes_entry, $encounter_entry] + $conditions + $observations
            + $procedures + $prescriptions + $referral)
  }
