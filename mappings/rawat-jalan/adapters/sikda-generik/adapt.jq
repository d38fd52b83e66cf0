# SIKDA Generik pelayanan row (+ pasien, mst_dokter and the pel_* child rows) → the
# rawat-jalan canonical record (mappings/rawat-jalan/input.schema.json).
#
# What is a code in SIKDA goes through a table: JNS_DX (sikda-jenis-diagnosa), JNS_KASUS
# (sikda-jenis-kasus), KEADAAN_KELUAR (sikda-keadaan-keluar), SAT_KECIL (sikda-satuan-kecil)
# and the tariff product KD_TINDAKAN (sikda-tindakan → ICD-9-CM). Drug codes stay the
# installation's own: the mapping resolves them to KFA through rawat-jalan-obat. Errors name
# the SIKDA column ($.TEKANAN_DARAH, $.WAKTU_KELUAR …). Nulls are pruned from the output, so
# a column that is NULL simply leaves its canonical field out.

# Stop with an error that points at the input field holding $value.
def fail($value; $message): error({gerbang: "adapter", value: $value, message: $message});

# A SIKDA DATETIME ("YYYY-MM-DD hh:mm[:ss]", or with T / an own offset) as the canonical local
# date-time, checked to be a real date and time; .utc is only used to order the three times.
def waktu($tz):
  . as $v
  | sub(" "; "T") as $local
  | { local: $local,
      utc: (try ($local | to_utc($tz)) catch fail($v; "`\($v)` is not a valid date and time (YYYY-MM-DD hh:mm[:ss])")) };

# TEKANAN_DARAH "120/80" → {sistole, diastole}; the schema has checked the form already.
def tekanan_darah:
  . as $td
  | capture("^(?<s>[0-9]{2,3})/(?<d>[0-9]{2,3})$") // fail($td; "TEKANAN_DARAH `\($td)` is not systolic/diastolic such as 120/80")
  | (.s | tonumber) as $s | (.d | tonumber) as $d
  | if $s < 40 or $s > 300 then fail($td; "TEKANAN_DARAH `\($td)`: systolic \($s) mmHg is outside 40–300")
    elif $d < 20 or $d > 200 then fail($td; "TEKANAN_DARAH `\($td)`: diastolic \($d) mmHg is outside 20–200")
    elif $s <= $d then fail($td; "TEKANAN_DARAH `\($td)`: the systolic pressure must be above the diastolic (written systolic/diastolic)")
    else {sistole: $s, diastole: $d} end;

. as $r
| ($r.ZONA_WAKTU // "WIB") as $tz
| ($r.TGL_PELAYANAN | waktu($tz)) as $daftar
| ($r.WAKTU_PERIKSA | waktu($tz)) as $periksa
| ($r.WAKTU_KELUAR | waktu($tz)) as $keluar
| if $periksa.utc < $daftar.utc then fail($r.WAKTU_PERIKSA; "WAKTU_PERIKSA \($r.WAKTU_PERIKSA) is before TGL_PELAYANAN \($r.TGL_PELAYANAN); the examination cannot start before registration") else . end
| if $keluar.utc <= $periksa.utc then fail($r.WAKTU_KELUAR; "WAKTU_KELUAR \($r.WAKTU_KELUAR) must be after WAKTU_PERIKSA \($r.WAKTU_PERIKSA)") else . end
| if $r.POLI_RUJUKAN and ($r.RS_RUJUKAN | not) then fail($r.POLI_RUJUKAN; "POLI_RUJUKAN needs RS_RUJUKAN, the facility the patient is referred to") else . end

| [ $r.PEL_DIAGNOSA[]
    | { kd_penyakit: .KD_PENYAKIT,
        nama: .PENYAKIT,
        jns_dx: (.JNS_DX | lookup("sikda-jenis-diagnosa")),
        jns_kasus: (if .JNS_KASUS then .JNS_KASUS | lookup("sikda-jenis-kasus") else null end) } ] as $diagnosa
| ($diagnosa | map(select(.jns_dx == "primer")) | length) as $primer
| if $primer != 1 then fail($r.PEL_DIAGNOSA; "PEL_DIAGNOSA needs exactly one primary diagnosis (JNS_DX Primer); found \($primer)") else . end

# Products → ICD-9-CM procedures; non-procedures dropped; the same procedure merged.
| [ ($r.PEL_TINDAKAN // [])[]
    | . as $t
    | (.KD_TINDAKAN | lookup("sikda-tindakan")) as $p
    | select($p.icd9cm != null)
    | {kd_tindakan: $p.icd9cm, sistem: "ICD-9-CM", nama: $p.display, qty: $t.QTY} ]
  | reduce .[] as $x ([];
      (first(range(length) as $k | select(.[$k].kd_tindakan == $x.kd_tindakan) | $k) // null) as $i
      | if $i == null then . + [$x]
        else .[$i].qty = ([.[$i].qty, $x.qty] | map(select(. != null)) | if length == 0 then null else add end) end)
  as $tindakan

# Drug codes are resolved to KFA by the mapping (rawat-jalan-obat); checking them here makes an
# unknown code point at its SIKDA column rather than at the canonical record.
| [ ($r.PEL_ORD_OBAT // [])[] | .KD_OBAT, (.DETAIL_RACIKAN // [])[].KD_OBAT | select(. != null) | lookup("rawat-jalan-obat") ] as $_
| [ ($r.PEL_ORD_OBAT // [])[]
    | (.RACIKAN == 1) as $racikan
    | { no_resep: .NO_RESEP,
        kd_obat: .KD_OBAT,
        nama_obat: .NAMA_OBAT,
        signa: .DOSIS,
        jumlah: .JUMLAH,
        satuan: (.SAT_KECIL | lookup("sikda-satuan-kecil")),
        racikan: $racikan,
        tipe_racikan: .JENIS_RACIKAN,
        komposisi: (if $racikan then [ .DETAIL_RACIKAN[] | {kd_obat: .KD_OBAT, nama_obat: .NAMA_OBAT} ] else null end) } ] as $resep

| (if $r.TEKANAN_DARAH then $r.TEKANAN_DARAH | tekanan_darah else {} end) as $td
| ($r.PASIEN) as $p
| {
    kd_kunjungan: "\($r.KD_KUNJUNGAN)/\($r.KD_PELAYANAN)",
    sumber: "SIKDA Generik",
    kd_puskesmas: $r.KD_PUSKESMAS,
    unit: $r.KD_UNIT,
    nama_unit: $r.UNIT,
    kd_pasien: $r.KD_PASIEN,
    zona_waktu: $tz,
    waktu_daftar: $daftar.local,
    waktu_periksa: $periksa.local,
    waktu_pulang: $keluar.local,
    pasien: {
      nik: $p.NIK,
      nik_ibu: $p.NIK_IBU,
      nama: $p.NAMA_LENGKAP,
      tgl_lahir: $p.TGL_LAHIR,
      jenis_kelamin: $p.KD_JENIS_KELAMIN,
      alamat: $p.ALAMAT,
      rt: $p.RT,
      rw: $p.RW,
      kode_desa: (if $p.KD_KELURAHAN then $p.KD_KELURAHAN | gsub("\\."; "") else null end),
      kelahiran_ke: (if $p.NIK then null else $p.KELAHIRAN_KE end)
    },
    dokter: {nik: $r.DOKTER.NIK, nama: $r.DOKTER.NAMA},
    cara_bayar: $r.CARA_BAYAR,
    anamnesa: {keluhan_utama: $r.ANAMNESA},
    ttv: {
      kesadaran: $r.KESADARAN,
      sistole: $td.sistole,
      diastole: $td.diastole,
      nadi: $r.NADI,
      nafas: $r.NAFAS,
      suhu: $r.SUHU,
      berat_badan: $r.BERAT_BADAN,
      tinggi_badan: $r.TINGGI_BADAN,
      lingkar_perut: $r.LINGKAR_PERUT,
      gds: $r.GDS
    },
    diagnosa: $diagnosa,
    tindakan: $tindakan,
    resep: $resep,
    status_pulang: (if $r.KEADAAN_KELUAR then ($r.KEADAAN_KELUAR | lookup("sikda-keadaan-keluar")).status_pulang else null end),
    rujukan: (if $r.RS_RUJUKAN then {tujuan: $r.RS_RUJUKAN, poli_tujuan: $r.POLI_RUJUKAN} else null end)
  }
