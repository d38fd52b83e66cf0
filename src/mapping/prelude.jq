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
