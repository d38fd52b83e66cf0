# BPJS P-Care kunjungan payload in its envelope → the rawat-jalan canonical record
# (mappings/rawat-jalan/input.schema.json).
#
# The dates come from P-Care (dd-mm-yyyy), the times of day from the envelope. P-Care's codes
# are interpreted only through the pcare-* tables, which hold only what the reference files
# support: kdStatusPulang "3" (pcare-status-pulang) and no kdSadar code at all
# (pcare-kesadaran). The facility's own words in the envelope (kesadaran, status_pulang) are
# used instead when present; a rujukLanjut means the visit ended in a referral. Everything
# else P-Care codes is kept locally or not sent. Errors name the input field ($.pcare.tglDaftar,
# $.pcare.kdDiag2 …). Nulls are pruned from the output.

# Stop with an error that points at the input field holding $value.
def fail($value; $message): error({gerbang: "adapter", value: $value, message: $message});

# P-Care's dd-mm-yyyy → YYYY-MM-DD, checked to be a real calendar date.
def pcare_date:
  . as $d
  | (split("-") | "\(.[2])-\(.[1])-\(.[0])") as $iso
  | (try ($iso + "T00:00" | to_utc("WIB")) catch fail($d; "`\($d)` is not a date (P-Care writes dd-mm-yyyy)"))
  | $iso;

# A P-Care measurement: 0 means it was not measured (no living patient measures 0).
def measured: if . == 0 then null else . end;

# A P-Care code that was sent (payloads write null or "" for none).
def sent: . != null and . != "";

. as $r
| $r.pcare as $k
| ($r.zona_waktu // "WIB") as $tz
| ($k.tglDaftar | pcare_date) as $tgl_daftar
| (if $k.tglPulang then $k.tglPulang | pcare_date else $tgl_daftar end) as $tgl_pulang
| if $tgl_pulang < $tgl_daftar then fail($k.tglPulang; "tglPulang \($k.tglPulang) is before tglDaftar \($k.tglDaftar)") else . end
| "\($tgl_daftar)T\($r.jam_daftar)" as $daftar
| "\($tgl_daftar)T\($r.jam_periksa)" as $periksa
| "\($tgl_pulang)T\($r.jam_pulang)" as $pulang
| if ($periksa | to_utc($tz)) < ($daftar | to_utc($tz)) then fail($r.jam_periksa; "jam_periksa \($r.jam_periksa) is before jam_daftar \($r.jam_daftar) on tglDaftar \($k.tglDaftar); the examination cannot start before registration") else . end
| if ($pulang | to_utc($tz)) <= ($periksa | to_utc($tz)) then fail($r.jam_pulang; "jam_pulang \($r.jam_pulang) on \($k.tglPulang // $k.tglDaftar) must be after the examination start (jam_periksa \($r.jam_periksa) on \($k.tglDaftar))") else . end

# Diagnoses: kdDiag1 is the primary one, kdDiag2 and kdDiag3 secondary; names from the envelope.
| [ ["kdDiag1", "primer"], ["kdDiag2", "sekunder"], ["kdDiag3", "sekunder"]
    | .[0] as $field | .[1] as $jns
    | $k[$field] // empty
    | . as $code
    | ($r.diagnosa[$code] // fail($code; "pcare.\($field) \($code) has no name: add \"\($code)\": {\"nama\": …} to the envelope's diagnosa (the ICD-10 name as the facility system records it)"))
    | {kd_penyakit: $code, nama: .nama, jns_dx: $jns, jns_kasus: .jns_kasus} ] as $diagnosa
| ($r.diagnosa | keys - ($diagnosa | map(.kd_penyakit))) as $extra
| if $extra != [] then fail($r.diagnosa[$extra[0]]; "diagnosa \($extra[0]) is not one of pcare.kdDiag1..kdDiag3") else . end

# Vital signs: both blood pressures or neither.
| ($k.sistole | measured) as $sistole
| ($k.diastole | measured) as $diastole
| if ($sistole == null) != ($diastole == null) then
    fail($k; "pcare: sistole and diastole are measured together, but one of them is 0 or missing")
  else . end

| $k.rujukLanjut as $lanjut
| (if $lanjut and $lanjut.tglEstRujuk then $lanjut.tglEstRujuk | pcare_date else null end) as $tgl_rujuk
| if $tgl_rujuk and $tgl_rujuk < $tgl_daftar then fail($lanjut.tglEstRujuk; "tglEstRujuk \($lanjut.tglEstRujuk) is before the visit (tglDaftar \($k.tglDaftar))") else . end
| if $r.rujukan.jam_est_rujuk and ($tgl_rujuk | not) then fail($r.rujukan.jam_est_rujuk; "rujukan.jam_est_rujuk needs pcare.rujukLanjut.tglEstRujuk, the date it belongs to") else . end

| {
    kd_kunjungan: $k.noKunjungan,
    sumber: ($r.sumber // "P-Care"),
    kd_puskesmas: $r.kd_puskesmas,
    unit: $r.unit,
    nama_unit: $r.nama_unit,
    kd_pasien: $r.kd_pasien,
    zona_waktu: $tz,
    waktu_daftar: $daftar,
    waktu_periksa: $periksa,
    waktu_pulang: $pulang,
    pasien: ($r.pasien + {no_bpjs: $k.noKartu}),
    dokter: $r.dokter,
    cara_bayar: "BPJS",
    kd_poli_pcare: $k.kdPoli,
    anamnesa: {keluhan_utama: $k.keluhan, riwayat_penyakit: $k.anamnesa},
    ttv: {
      kesadaran: (if $r.kesadaran then $r.kesadaran
                  elif $k.kdSadar | sent then $k.kdSadar | lookup("pcare-kesadaran")
                  else null end),
      sistole: $sistole,
      diastole: $diastole,
      nadi: ($k.heartRate | measured),
      nafas: ($k.respRate | measured),
      suhu: ($k.suhu | if type == "string" then sub(","; ".") | tonumber else . end | measured),
      berat_badan: ($k.beratBadan | measured),
      tinggi_badan: ($k.tinggiBadan | measured),
      lingkar_perut: ($k.lingkarPerut | measured)
    },
    diagnosa: $diagnosa,
    resep: $r.resep,
    edukasi: $k.terapiNonObat,
    status_pulang: (if $r.status_pulang then $r.status_pulang
                    elif $lanjut then "rujuk"
                    elif $k.kdStatusPulang | sent then $k.kdStatusPulang | lookup("pcare-status-pulang")
                    else null end),
    kd_status_pulang_pcare: $k.kdStatusPulang,
    rujukan: (if $lanjut then {
      no_rujukan: $r.rujukan.no_rujukan,
      tujuan: $r.rujukan.tujuan,
      kd_ppk: $lanjut.kdppk,
      poli_tujuan: $r.rujukan.poli_tujuan,
      prioritas: $r.rujukan.prioritas,
      alasan: $r.rujukan.alasan,
      waktu_rencana: (if $tgl_rujuk and $r.rujukan.jam_est_rujuk then "\($tgl_rujuk)T\($r.rujukan.jam_est_rujuk)" else null end)
    } else null end)
  }
