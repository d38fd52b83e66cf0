# gerbang's built-in jq definitions, available to every mapping (README: "Writing a mapping").
# Natives implemented in Rust: `uuid5` (string → deterministic UUID) and `to_utc($zone)`
# (local date-time string → "YYYY-MM-DDThh:mm:ss+00:00").
# Global variables: $org (SATUSEHAT organization id of the sender), $location (its Location
# id), $record_type, $local_id (the facility's own record id), $tables (code tables).

# The SATUSEHAT identifier system of a resource kind for the sender's organization,
# e.g. sys_id("encounter") → "http://sys-ids.kemkes.go.id/encounter/<org>".
def sys_id($kind): "http://sys-ids.kemkes.go.id/\($kind)/\($org)";

# A deterministic urn:uuid for the resource `$key` of this record: the same facility record
# always gives the same fullUrl, so a re-sent record is recognised instead of duplicated.
def full_url($key): "urn:uuid:" + ("\($org)/\($record_type)/\($local_id)/\($key)" | uuid5);

# A deterministic urn:uuid for a resource that outlives this record and is shared by several
# records, e.g. the EpisodeOfCare of a pregnancy: `shared_full_url("kehamilan"; $id)`.
def shared_full_url($scope; $id): "urn:uuid:" + ("\($org)/\($scope)/\($id)" | uuid5);

# A date (YYYY-MM-DD) as the dateTime SATUSEHAT wants for date-valued elements such as the
# HPHT: midnight UTC (converting local midnight would move the date back a day).
def date_utc: if test("^[0-9]{4}-[0-9]{2}-[0-9]{2}$") then . + "T00:00:00+00:00" else error({gerbang: "time", value: ., message: "`\(.)` is not a date (YYYY-MM-DD)"}) end;

# A deterministic local identifier value for a resource of this record.
def local_key($key): "\($local_id)/\($key)";

# Look the input up in a code table; an unknown code is an error naming the table and value.
# An entry whose value is null means "known, but no national code exists": the result is
# null, which the engine then leaves out of the output.
# (The error is an object so that gerbang can point at the input field holding the value.)
def lookup($table):
  . as $value
  | ($tables[$table] // error({gerbang: "lookup", value: $value,
      message: "there is no code table \"\($table)\" (mappings/tables/\($table).json)"}))
  | if has($value | tostring) then .[$value | tostring]
    else error({gerbang: "lookup", value: $value,
         message: "code table \"\($table)\" has no entry for \($value | tojson); add it to mappings/tables/\($table).json or correct the record"})
    end;

# Whether a code table has an entry for the input (for optional codes).
def in_table($table): . as $value | ($tables[$table] // {}) | has($value | tostring);

# A transaction Bundle entry that creates `resource` under `fullUrl`.
def post_entry($fullUrl): {fullUrl: $fullUrl, resource: ., request: {method: "POST", url: .resourceType}};

# A conditional-create entry: the resource is looked up by `$query` first (a Patient by NIK,
# a Practitioner by NIK); gerbang's forwarder resolves these to SATUSEHAT ids on delivery.
def lookup_entry($fullUrl; $query):
  {fullUrl: $fullUrl, resource: ., request: {method: "POST", url: .resourceType, ifNoneExist: $query}};

# A Reference to a resource of this Bundle.
def ref($fullUrl): {reference: $fullUrl};

# FHIR datatypes.
def coding($system; $code; $display): {system: $system, code: $code, display: $display};
def concept($system; $code; $display): {coding: [coding($system; $code; $display)]};
# A Quantity in UCUM: the unit is also the UCUM code (kg, cm, mL, [iU], {Zscore} …).
def ucum($value; $unit): {value: $value, unit: $unit, system: "http://unitsofmeasure.org", code: $unit};

# Prescriptions (rawat-jalan, and anc.kunjungan's iron tablets): units and signa, from the
# shared table mappings/tables/rawat-jalan-satuan.json.
# A Quantity in a prescription unit (mappings/tables/rawat-jalan-satuan.json).
def unit_quantity($value; $satuan):
  ($satuan | lookup("rawat-jalan-satuan")) as $u
  | {value: $value, unit: $u.unit, system: $u.system, code: $u.code};

# A signa of the common form "N x D [unit] [words]" ("3x1", "1x1 tablet pagi", "2 x 1/2 tab",
# "3 dd 1") → {frequency, dose, word}; null for anything else ("k/p bila nyeri", "1-0-1"), which
# is then sent as text only. A parsed signa that says it is taken when needed ("bila …",
# "jika …", "k/p", "prn") also sets asNeededBoolean; its frequency is then a maximum per day.
def signa_parts:
  [ ascii_downcase
    | capture("^\\s*(?<f>[1-9][0-9]?)\\s*(?:x|×|dd)\\s*(?<d>1/2|½|1/4|¼|[0-9]+(?:[.,][0-9]+)?)(?:\\s*(?<rest>[^0-9].*))?$") ]
  | first // null
  | if . == null then null else
      { frequency: (.f | tonumber),
        dose: (if .d == "1/2" or .d == "½" then 0.5 elif .d == "1/4" or .d == "¼" then 0.25
               else .d | sub(","; ".") | tonumber end),
        word: ((.rest // "") | [capture("^\\s*(?<w>[a-z/]+)")] | first // null | if . then .w else null end) }
    end;

# Words that may follow the dose without being its unit: the dose is then in the line's own
# unit (satuan) — but only a countable one (tablet, kapsul, bungkus, tetes), never mL.
def timing_word: . as $w | $w == null or (["pagi", "siang", "sore", "malam", "sesudah", "sebelum", "setelah",
  "saat", "sehari", "hari", "ac", "pc", "hs", "prn", "bila", "jika", "k/p"] | index([$w]) != null);

# dosageInstruction of one prescription line.
def dosage($signa; $satuan; $route):
  ($signa | signa_parts) as $p
  | (if $p == null then null
     elif $p.word != null and $tables["rawat-jalan-satuan"][$p.word] != null then
       (if $tables["rawat-jalan-satuan"][$p.word].dose then $p.word else null end)
     elif ($p.word | timing_word) and ($satuan | lookup("rawat-jalan-satuan")).implied then $satuan
     else null end) as $dose_unit
  | [{
      sequence: 1,
      text: $signa,
      asNeededBoolean: (if $p and ($signa | ascii_downcase | test("(^|[^a-z])(k/p|prn|bila|jika)([^a-z]|$)")) then true else null end),
      timing: (if $p then {repeat: {frequency: $p.frequency, period: 1, periodUnit: "d"}} else null end),
      route: $route,
      doseAndRate: (if $dose_unit then [{
        type: concept("http://terminology.hl7.org/CodeSystem/dose-rate-type"; "ordered"; "Ordered"),
        doseQuantity: unit_quantity($p.dose; $dose_unit)
      }] else null end)
    }];
