//! The console's words: one table of labels in Indonesian (the default: the people at a
//! district office or a puskesmas read it first) and English, the language a request is
//! answered in, and how times are shown (WIB, with the zone named).
//!
//! The language comes from the `lang` cookie (set by the switch in the header, `?lang=en`),
//! else from `Accept-Language`, else Indonesian. What gerbang only passes on — SATUSEHAT's
//! own error texts, FHIRPath expressions, record field names — is shown as it is.

use actix_web::HttpRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Id,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Id => "id",
            Lang::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code.trim().to_ascii_lowercase().as_str() {
            "id" | "in" => Some(Lang::Id),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language of a request: its `lang` cookie, its `Accept-Language`, or Indonesian.
    pub fn of(req: &HttpRequest) -> Lang {
        super::session::cookie(req, LANG_COOKIE)
            .and_then(|c| Lang::parse(&c))
            .or_else(|| {
                req.headers()
                    .get("Accept-Language")
                    .and_then(|h| h.to_str().ok())
                    .and_then(from_accept_language)
            })
            .unwrap_or(Lang::Id)
    }
}

/// The cookie that keeps a chosen language.
pub const LANG_COOKIE: &str = "lang";

/// The most preferred of the languages the console speaks in an `Accept-Language` header
/// (`en-US,en;q=0.9,id;q=0.8`); None when it names neither.
pub fn from_accept_language(header: &str) -> Option<Lang> {
    let mut best: Option<(f32, Lang)> = None;
    for part in header.split(',') {
        let mut pieces = part.split(';');
        let tag = pieces.next().unwrap_or("").trim();
        let primary = tag.split('-').next().unwrap_or("");
        let Some(lang) = Lang::parse(primary) else {
            continue;
        };
        let q = pieces
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        // The first of equal weights wins, as the header lists them by preference.
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l)
}

/// Indonesia's western time (UTC+7), where most facilities are; times are shown in it,
/// always with the zone named, so nobody mistakes them for UTC.
pub fn wib(ms: i64) -> String {
    use chrono::{FixedOffset, TimeZone};
    let zone = FixedOffset::east_opt(7 * 3600).expect("UTC+7 is a valid offset");
    match zone.timestamp_millis_opt(ms).single() {
        Some(t) => format!("{} WIB", t.format("%Y-%m-%d %H:%M:%S")),
        None => "?".into(),
    }
}

/// The hour of day (WIB) of an instant, for chart axes: `08`.
pub fn wib_hour(ms: i64) -> String {
    use chrono::{FixedOffset, TimeZone};
    let zone = FixedOffset::east_opt(7 * 3600).expect("UTC+7 is a valid offset");
    zone.timestamp_millis_opt(ms)
        .single()
        .map_or_else(|| "?".into(), |t| t.format("%H").to_string())
}

/// A duration in words: `3 j 12 m` / `3 h 12 m`, `45 d` / `45 s`.
pub fn duration(lang: Lang, ms: i64) -> String {
    let s = (ms.max(0) / 1000) as u64;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let (day, hour, min, second) = match lang {
        Lang::Id => ("hr", "j", "m", "d"),
        Lang::En => ("d", "h", "m", "s"),
    };
    if d > 0 {
        format!("{d} {day} {h} {hour}")
    } else if h > 0 {
        format!("{h} {hour} {m} {min}")
    } else if m > 0 {
        format!("{m} {min} {sec} {second}")
    } else {
        format!("{sec} {second}")
    }
}

/// The label table: each key once, Indonesian then English.
macro_rules! labels {
    ($($key:ident => $id:literal, $en:literal;)*) => {
        /// A label of the console.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Key { $($key),* }

        impl Key {
            /// Every label, for the test that none is empty.
            pub const ALL: &[Key] = &[$(Key::$key),*];
        }

        /// The label `key` in `lang`.
        pub fn t(lang: Lang, key: Key) -> &'static str {
            match (lang, key) {
                $(
                    (Lang::Id, Key::$key) => $id,
                    (Lang::En, Key::$key) => $en,
                )*
            }
        }
    };
}

labels! {
    AppName => "Konsol gerbang", "gerbang console";
    NavOverview => "Ringkasan", "Overview";
    NavRefused => "Ditolak", "Refused";
    NavFacilities => "Fasilitas", "Facilities";
    NavAudit => "Audit", "Audit";
    NavRecords => "Catatan", "Records";
    NavPlayground => "Uji pemetaan", "Playground";
    SignIn => "Masuk", "Sign in";
    SignOut => "Keluar", "Sign out";
    SignInTitle => "Masuk ke konsol", "Sign in to the console";
    SignInHelp => "Tempelkan kunci operator atau kunci API fasilitas Anda. Kunci tidak pernah muncul di alamat halaman.",
                  "Paste your operator key or your facility's API key. The key never appears in a page address.";
    KeyLabel => "Kunci", "Key";
    WrongKey => "Kunci ini tidak dikenal atau sudah dicabut. Periksa kuncinya lalu coba lagi.",
                "This key is unknown or revoked. Check the key and try again.";
    TooManyAttempts => "Terlalu banyak percobaan masuk dari alamat ini. Tunggu sebentar lalu coba lagi.",
                       "Too many sign-in attempts from this address. Wait a moment and try again.";
    SignedInAs => "Masuk sebagai", "Signed in as";
    Operator => "operator", "operator";
    Facility => "fasilitas", "facility";
    FacilityField => "Fasilitas", "Facility";
    Language => "Bahasa", "Language";
    ErrorTitle => "Ada masalah", "Something went wrong";
    Forbidden => "Halaman ini bukan untuk kunci Anda", "This page is not for your key";
    ForbiddenOperatorOnly => "Halaman ini hanya untuk operator. Masuk dengan kunci operator (`gerbang operator add`).",
                             "This page is for operators only. Sign in with an operator key (`gerbang operator add`).";
    ForbiddenFacilityOnly => "Halaman ini hanya untuk fasilitas. Masuk dengan kunci API fasilitas.",
                             "This page is for facilities only. Sign in with a facility API key.";
    NotFound => "Tidak ditemukan", "Not found";
    NotFoundText => "Halaman atau catatan ini tidak ada, atau bukan milik kunci Anda. Kembali ke halaman utama.",
                    "This page or record does not exist, or it is not yours to see. Go back to the start page.";
    SessionEnded => "Sesi Anda berakhir. Silakan masuk lagi.", "Your session ended. Please sign in again.";
    BadForm => "Formulir ini kedaluwarsa atau tidak berasal dari konsol ini. Muat ulang halaman lalu kirim lagi.",
               "This form is stale or did not come from this console. Reload the page and send it again.";
    StoreDown => "gerbang tidak dapat memakai penyimpanannya saat ini (disk penuh, atau basis data tidak terjangkau). Coba lagi dalam 30 detik.",
                 "gerbang cannot use its store right now (a full disk, or the database away). Try again in 30 seconds.";
    BackHome => "Kembali ke halaman utama", "Back to the start page";
    SkipToContent => "Langsung ke isi", "Skip to content";
    OverviewTitle => "Ringkasan antrean", "Queue overview";
    ReceiptsByOrganization => "Catatan menurut status dan organisasi", "Records by status and organization";
    Organization => "Organisasi", "Organization";
    Total => "Jumlah", "Total";
    QueueAge => "Umur antrean", "Queue age";
    QueueAgeHelp => "sejak catatan tertua yang masih menunggu diterima gerbang",
                    "since the oldest record still waiting was accepted by gerbang";
    NothingWaiting => "tidak ada yang menunggu", "nothing waiting";
    Breaker => "Pemutus sirkuit", "Circuit breaker";
    BreakerClosed => "normal", "closed";
    BreakerOpen => "terbuka: pengiriman dijeda", "open: deliveries paused";
    BreakerHalfOpen => "uji satu kiriman", "half-open: one probe";
    FailuresInARow => "gagal berturut-turut", "failures in a row";
    DeliveredPerHour => "Terkirim per jam (24 jam terakhir, WIB)", "Delivered per hour (last 24 hours, WIB)";
    DeliveredWord => "terkirim", "delivered";
    LatencyPerHour => "Waktu dari diterima sampai terkirim, per jam (detik)", "Time from acceptance to delivery, per hour (seconds)";
    Median => "median", "median";
    P95 => "persentil ke-95", "95th percentile";
    NoReceipts => "Belum ada catatan.", "No records yet.";
    RefusedTitle => "Catatan yang ditolak SATUSEHAT", "Records SATUSEHAT refused";
    RefusedHelp => "Setiap kesalahan menyebut nomor aturan SATUSEHAT, elemen FHIR-nya, dan kolom catatan fasilitas asalnya. Perbaiki penyebabnya (pemetaan, tabel kode, data fasilitas), lalu kirim ulang; atau buang dengan alasan.",
                  "Each error names SATUSEHAT's rule number, its FHIR element, and the field of the facility's record it came from. Fix the cause (a mapping, a code table, the facility's data), then replay; or discard with a reason.";
    Any => "semua", "any";
    RecordType => "Jenis catatan", "Record type";
    Filter => "Saring", "Filter";
    NoRefused => "Tidak ada catatan yang ditolak untuk saringan ini.", "No refused records for this filter.";
    RefusedCount => "catatan ditolak (terbaru dulu)", "refused records (newest first)";
    SelectAll => "Pilih semua", "Select all";
    Record => "Catatan", "Record";
    WhyRefused => "Mengapa ditolak", "Why it was refused";
    Rule => "Aturan", "Rule";
    Element => "Elemen", "Element";
    RecordField => "Kolom catatan", "Record field";
    Replay => "Kirim ulang yang dipilih", "Replay the ticked ones";
    ReplayHelp => "Dipetakan ulang dengan pemetaan saat ini, divalidasi, lalu diantrekan lagi.",
                  "Mapped again with the current mappings, validated, and queued again.";
    Reason => "Alasan membuang (wajib)", "Reason to discard (required)";
    Discard => "Buang yang dipilih", "Discard the ticked ones";
    DiscardConfirm => "Buang catatan yang dipilih? Catatan ini tidak akan dikirim ke SATUSEHAT.",
                      "Discard the ticked records? They will not be sent to SATUSEHAT.";
    ReplayedCount => "catatan diantrekan lagi.", "records queued again.";
    DiscardedCount => "catatan dibuang.", "records discarded.";
    ReasonRequired => "Membuang catatan butuh alasan. Kembali, tulis alasannya di kolom Alasan, lalu kirim lagi.",
                      "A discard needs a reason. Go back, write the reason in the Reason field, and send again.";
    NothingTicked => "Tidak ada catatan yang dipilih. Kembali, centang catatannya, lalu kirim lagi.",
                     "No record was ticked. Go back, tick the records, and send again.";
    UnknownAction => "Tindakan ini tidak dikenal. Muat ulang halaman lalu coba lagi.",
                     "This action is unknown. Reload the page and try again.";
    RecordTitle => "Catatan", "Record";
    Receipt => "Tanda terima", "Receipt";
    ReceivedAt => "Diterima", "Received";
    UpdatedAt => "Terakhir berubah", "Last changed";
    Revision => "Revisi", "Revision";
    DeliveredRevision => "Revisi di SATUSEHAT", "Revision SATUSEHAT holds";
    NextAttempt => "Percobaan berikutnya", "Next attempt";
    LastError => "Kesalahan terakhir", "Last error";
    DiscardReason => "Alasan dibuang", "Why it was discarded";
    CancelReason => "Alasan dibatalkan", "Why it was cancelled";
    ToRefusedList => "Ke daftar catatan ditolak", "To the refused records";
    Revisions => "Revisi", "Revisions";
    Outcome => "Hasil", "Outcome";
    OutcomeAt => "Waktu hasil", "Outcome at";
    Changes => "Perubahan di SATUSEHAT", "Changes at SATUSEHAT";
    Attempts => "Percobaan pengiriman", "Delivery attempts";
    NoAttempts => "Belum ada percobaan pengiriman.", "No delivery attempt yet.";
    StartedAt => "Mulai", "Started";
    Detail => "Keterangan", "Detail";
    SatusehatIds => "ID di SATUSEHAT", "SATUSEHAT ids";
    NoServerIds => "SATUSEHAT belum menyimpan sumber daya catatan ini.", "SATUSEHAT holds no resource of this record yet.";
    ResourceType => "Jenis sumber daya", "Resource type";
    EventsSent => "Kejadian untuk webhook fasilitas", "Events for the facility's webhook";
    NoEvents => "Belum ada kejadian.", "No events yet.";
    NoWebhook => "Fasilitas ini belum mendaftarkan webhook; kejadian tetap bisa dibaca di GET /events.",
                 "This facility has no webhook; the events can still be read at GET /events.";
    Event => "Kejadian", "Event";
    At => "Waktu", "At";
    Acknowledged => "selesai dikirim", "sent";
    Waiting => "menunggu", "waiting";
    RecordAndBundle => "Catatan dan Bundle", "Record and Bundle";
    TheRecord => "Catatan fasilitas", "The facility's record";
    PayloadPruned => "Isi catatan dan Bundle sudah dihapus sesuai masa simpan; tanda terimanya tetap.",
                     "The record and its Bundle were pruned (retention); the receipt stays.";
    FacilitiesTitle => "Fasilitas, kunci, dan webhook", "Facilities, keys and webhooks";
    NoFacilities => "Belum ada fasilitas terdaftar.", "No facility is registered yet.";
    Location => "Lokasi", "Location";
    ApiKeys => "Kunci API", "API keys";
    Fingerprint => "Sidik kunci", "Key fingerprint";
    Created => "Dibuat", "Created";
    State => "Keadaan", "State";
    Revoked => "dicabut", "revoked";
    Active => "aktif", "active";
    Revoke => "Cabut", "Revoke";
    RevokeConfirm => "Cabut kunci ini? Sistem yang memakainya tidak bisa mengirim lagi.",
                     "Revoke this key? Systems using it can no longer send.";
    NewKey => "Buat kunci baru", "Create another key";
    CreateFacility => "Daftarkan fasilitas", "Register a facility";
    FacilityId => "ID fasilitas (huruf, angka, . _ -)", "Facility id (letters, digits, . _ -)";
    FacilityName => "Nama fasilitas", "Facility name";
    OrganizationId => "ID organisasi SATUSEHAT", "SATUSEHAT organization id";
    LocationId => "ID lokasi SATUSEHAT", "SATUSEHAT location id";
    FacilityFieldsRequired => "Isi ID fasilitas, nama, ID organisasi, dan ID lokasi (huruf, angka, titik, garis bawah, atau tanda hubung). Kembali lalu lengkapi.",
                              "Fill in the facility id, name, organization id and location id (letters, digits, dots, underscores or hyphens). Go back and complete them.";
    FacilityExists => "Fasilitas dengan ID ini sudah ada. Pakai \"Buat kunci baru\" pada fasilitas itu, atau pilih ID lain.",
                      "A facility with this id exists already. Use \"Create another key\" on it, or choose another id.";
    FacilityCreated => "Fasilitas terdaftar:", "Facility registered:";
    KeyCreated => "Kunci baru dibuat untuk", "New key created for";
    KeyShownOnce => "Salin kunci di bawah sekarang: kunci ini hanya ditampilkan sekali, gerbang hanya menyimpan hash-nya.",
                    "Copy the key below now: it is shown this once; gerbang keeps only its hash.";
    KeyNotFound => "Kunci ini tidak ada atau sudah dicabut. Muat ulang halaman.", "This key does not exist or was revoked already. Reload the page.";
    KeyRevoked => "Kunci dicabut:", "Key revoked:";
    NoWebhookShort => "tidak ada", "none";
    WebhookOk => "berjalan", "working";
    WebhookFailing => "gagal", "failing";
    EventsWaiting => "kejadian menunggu", "events waiting";
    EventsGivenUp => "kejadian dilewati", "events given up";
    LastSuccess => "Terakhir berhasil", "Last success";
    AuditTitle => "Log audit", "Audit log";
    Actor => "Pelaku", "Actor";
    Action => "Tindakan", "Action";
    Since => "Sejak", "Since";
    Until => "Sampai", "Until";
    NoAudit => "Tidak ada entri untuk saringan ini.", "No entries for this filter.";
    AuditCount => "entri (terbaru dulu)", "entries (newest first)";
    BadTime => "Waktu harus seperti 2026-05-12T08:30 (WIB), bukan", "A time must look like 2026-05-12T08:30 (WIB), not";
    RecordsTitle => "Catatan fasilitas Anda", "Your facility's records";
    NeedsCorrection => "Perlu diperbaiki", "Needs correcting";
    NeedsCorrectionHelp => "SATUSEHAT menolak catatan berikut. Setiap kesalahan menyebut nomor aturan SATUSEHAT, elemen FHIR-nya, dan kolom catatan Anda asalnya.",
                           "SATUSEHAT refused these records. Each error names SATUSEHAT's rule number, its FHIR element, and the field of your record it came from.";
    CorrectHow => "Yang perlu dilakukan: perbaiki kolom yang disebut di sistem Anda, lalu kirim catatan itu lagi dengan ID lokal yang sama. Itu menjadi koreksi (revisi baru) dan dikirim ulang ke SATUSEHAT. Jangan pakai ID lokal baru: catatan akan tercatat dua kali.",
                  "What to do: correct the field in your system and send the record again with the same local id. It becomes a correction (a new revision) and is delivered to SATUSEHAT again. Do not use a new local id: the record would be there twice.";
    AllRefused => "Semua catatan yang ditolak", "All refused records";
    NothingToCorrect => "Tidak ada catatan yang perlu diperbaiki.", "Nothing needs correcting.";
    RecordsByStatus => "Catatan menurut status", "Records by status";
    AllStatuses => "Semua", "All";
    NoRecordsHere => "Tidak ada catatan dengan status ini.", "No records in this status.";
    LocalId => "ID lokal", "Local id";
    Status => "Status", "Status";
    FirstPage => "Ke halaman pertama", "To the first page";
    NextPage => "Halaman berikutnya", "Next page";
    UnknownStatus => "Status ini tidak dikenal:", "This status is unknown:";
    PlaygroundTitle => "Uji pemetaan", "Mapping playground";
    PlaygroundHelp => "Pilih jenis catatan, tempel atau unggah catatan (atau mulai dari contoh), lalu lihat Bundle dan OperationOutcome berdampingan. Mesinnya sama dengan `gerbang map` dan `gerbang validate` serta POST /ingest: tidak ada yang disimpan atau dikirim, tanpa jaringan.",
                      "Choose a record type, paste or upload a record (or start from an example), and see the Bundle and the OperationOutcome side by side. The engine is that of `gerbang map`, `gerbang validate` and POST /ingest: nothing is stored or sent, no network.";
    ModeMap => "Petakan catatan", "Map a record";
    ModeValidate => "Validasi FHIR JSON", "Validate FHIR JSON";
    ValidateHelp => "Tempel FHIR JSON apa saja — sumber daya, Bundle, atau NDJSON — untuk memeriksanya seperti `gerbang validate` dan POST /fhir/$validate.",
                    "Paste any FHIR JSON — a resource, a Bundle, or NDJSON — to check it as `gerbang validate` and POST /fhir/$validate do.";
    StartFromExample => "Mulai dari contoh", "Start from an example";
    ChooseExample => "— pilih contoh —", "— choose an example —";
    LoadExample => "Muat contoh", "Load the example";
    LocalFormat => "Format lokal", "Local format";
    CanonicalFormat => "kanonik (tanpa adaptor)", "canonical (no adapter)";
    SenderOwn => "Dipetakan untuk fasilitas Anda", "Mapped for your facility";
    SenderPlayground => "Dipetakan untuk pengirim uji, seperti `gerbang map` tanpa --org (organisasi demo sandbox)",
                        "Mapped for the playground sender, as `gerbang map` without --org maps (the sandbox's demo organization)";
    RecordJson => "Catatan (JSON)", "Record (JSON)";
    FhirJson => "FHIR JSON (sumber daya, Bundle, atau NDJSON)", "FHIR JSON (a resource, a Bundle, or NDJSON)";
    SizeLimit => "Paling besar", "At most";
    SizeLimitWhy => "— batas yang sama dengan badan permintaan API (ingest.max_body_bytes).",
                    "— the same limit as the API's request bodies (ingest.max_body_bytes).";
    UploadFile => "Atau pilih berkas JSON", "Or choose a JSON file";
    UploadNeedsScript => "Berkas dibaca ke kotak di atas dengan JavaScript. Tanpa JavaScript, buka berkasnya lalu tempel isinya.",
                         "The file is read into the box above with JavaScript. Without JavaScript, open the file and paste its content.";
    FileTooLarge => "Berkas ini melebihi batas badan permintaan API (ingest.max_body_bytes).",
                    "This file is larger than the API's request body limit (ingest.max_body_bytes).";
    RunMap => "Petakan dan validasi", "Map and validate";
    RunValidate => "Validasi", "Validate";
    UnknownExample => "Contoh ini tidak ada. Pilih contoh dari daftar.", "There is no such example. Choose one from the list.";
    EmptyInput => "Kotak catatan kosong: tempel catatan JSON, pilih berkas, atau muat contoh.",
                  "The record box is empty: paste a JSON record, choose a file, or load an example.";
    NotJson => "Isi ini bukan JSON. Periksa koma, tanda kutip, dan kurung di tempat yang disebut:",
               "This is not JSON. Check the commas, quotes and brackets at the place named:";
    TooDeep => "JSON ini bersarang terlalu dalam; catatan atau sumber daya FHIR tidak pernah perlu sedalam itu. Batas tingkat:",
               "This JSON is nested too deep; a record or a FHIR resource never needs that. Levels allowed:";
    TooLarge => "Isi ini melebihi batas badan permintaan API (ingest.max_body_bytes); coba sebagian saja. Batasnya",
                "This is larger than the API's request body limit (ingest.max_body_bytes); try a part of it. The limit is";
    EngineFailed => "gerbang gagal memproses isi ini. Ini kesalahan gerbang: laporkan bersama isinya.",
                    "gerbang failed on this content. That is a bug in gerbang: report it with the content.";
    FhirJsonTitle => "FHIR JSON", "FHIR JSON";
    NoBundle => "Tidak ada Bundle: catatan berhenti sebelum dipetakan. Perbaiki masalah yang disebut di sebelah.",
                "No Bundle: the record stopped before it was mapped. Fix the issues named beside this.";
    NoSingleJson => "Tidak ditampilkan: isi ini bukan satu dokumen JSON.", "Not shown: this is not one JSON document.";
    Passes => "lolos", "passes";
    Fails => "ditolak", "refused";
    ErrorsWord => "galat", "errors";
    WarningsWord => "peringatan", "warnings";
    NotesWord => "informasi", "notes";
    NoIssues => "Tidak ada masalah.", "No issues.";
    OutcomeJson => "OperationOutcome sebagai JSON (seperti jawaban API)", "The OperationOutcome as JSON (as the API answers)";
    PlaygroundRecord => "Catatan yang diuji", "The record tried";
    CanonicalRecord => "Catatan kanonik dari adaptor", "The canonical record the adapter made";
    CanonicalField => "Kolom catatan kanonik", "Canonical record field";
    SeverityError => "galat", "error";
    SeverityWarning => "peringatan", "warning";
    SeverityInformation => "informasi", "information";
    BadCursor => "Tautan halaman ini tidak dikenal. Buka lagi daftar catatan dari awal.",
                 "This page link is not one the console made. Open the list of records from its start.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_exists_in_both_languages() {
        for key in Key::ALL {
            assert!(
                !t(Lang::Id, *key).trim().is_empty(),
                "{key:?} in Indonesian"
            );
            assert!(!t(Lang::En, *key).trim().is_empty(), "{key:?} in English");
        }
    }

    #[test]
    fn accept_language_picks_the_most_preferred_known_language() {
        assert_eq!(
            from_accept_language("en-US,en;q=0.9,id;q=0.8"),
            Some(Lang::En)
        );
        assert_eq!(
            from_accept_language("fr, id;q=0.5, en;q=0.4"),
            Some(Lang::Id)
        );
        assert_eq!(from_accept_language("id-ID"), Some(Lang::Id));
        assert_eq!(from_accept_language("de, fr;q=0.8"), None);
        assert_eq!(from_accept_language("en;q=0, id;q=0.1"), Some(Lang::Id));
        assert_eq!(from_accept_language(""), None);
    }

    #[test]
    fn language_falls_back_from_cookie_to_header_to_indonesian() {
        use actix_web::test::TestRequest;
        let r = TestRequest::default().to_http_request();
        assert_eq!(Lang::of(&r), Lang::Id);
        let r = TestRequest::default()
            .insert_header(("Accept-Language", "en-GB"))
            .to_http_request();
        assert_eq!(Lang::of(&r), Lang::En);
        let r = TestRequest::default()
            .insert_header(("Accept-Language", "en-GB"))
            .insert_header(("Cookie", "gerbang_console=x; lang=id"))
            .to_http_request();
        assert_eq!(Lang::of(&r), Lang::Id);
        // A cookie with a language the console does not speak falls through.
        let r = TestRequest::default()
            .insert_header(("Cookie", "lang=fr"))
            .insert_header(("Accept-Language", "en"))
            .to_http_request();
        assert_eq!(Lang::of(&r), Lang::En);
    }

    #[test]
    fn times_are_shown_in_wib_with_the_zone_named() {
        // 2026-05-12T01:30:00Z
        assert_eq!(wib(1_778_549_400_000), "2026-05-12 08:30:00 WIB");
        assert_eq!(wib_hour(1_778_549_400_000), "08");
        assert_eq!(duration(Lang::En, 3 * 3_600_000 + 12 * 60_000), "3 h 12 m");
        assert_eq!(duration(Lang::Id, 45_000), "45 d");
    }
}
