#!/usr/bin/env python3
"""Peer baseline for benches/compare.sh: map + validate records per second, the Python way.

What it measures: the path a SATUSEHAT integrator writes today in Python — parse a
posyandu.balita record from its JSON text, map it with satusehat-integration's builders into a
transaction Bundle, and validate that Bundle with fhir.resources (pydantic, R4B) — on one
thread, on the same record gerbang's map_validate bench maps (its canonical example).
Pinned: satusehat-integration==4.14.1, fhir.resources==8.3.0 (benches/peers/requirements.txt,
installed by benches/peers/install.sh into ~/.cache/gerbang/python-peer).

Usage: peer_python.py RECORD.json [--seconds S]   prints `RESULT records_per_s X resources N`.
Adapted from the reference peer of the performance goals (same mapping).

Notes: satusehat-integration 4.14.1's wheel imports itself as `src.…` (aliased below), and its
ObservationBuilder.set_effective_time writes `effectiveTime`, which is not FHIR
(effectiveDateTime is set directly instead).
"""
import json, os, site, sys, time, types, uuid

# satusehat-integration 4.14.1's wheel imports itself as `src.…`; alias that to site-packages.
_src = types.ModuleType("src")
_src.__path__ = [d for d in site.getsitepackages() if os.path.isdir(os.path.join(d, "builder"))]
sys.modules.setdefault("src", _src)
from builder.patient import PatientBuilder  # noqa: E402
from builder.encounter import EncounterBuilder  # noqa: E402
from builder.observation import ObservationBuilder  # noqa: E402
from builder.immunization import ImmunizationBuilder  # noqa: E402
from builder.bundle import BundleBuilder  # noqa: E402
from fhir.resources.R4B.bundle import Bundle  # noqa: E402

ORG = "10000004"
NS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")


def utc(d):  # posyandu dates are local dates; WIB midnight → UTC
    return d + "T00:00:00+00:00" if "T" not in d else d


def map_record(r):
    day = r.get("tanggal_kunjungan") or r["waktu_mulai"][:10]
    p = r["peserta"]
    t = utc(day)
    key = (p.get("nik") or p["nik_ibu"]) + day
    fu = lambda kind: "urn:uuid:" + str(uuid.uuid5(NS, kind + key))  # noqa: E731
    pat = PatientBuilder()
    pat.data["identifier"] = [{"use": "official", "system": "https://fhir.kemkes.go.id/id/nik", "value": p["nik"]}]
    pat.data["name"] = [{"use": "official", "text": p["nama"]}]
    pat.set_gender("female" if p["jenis_kelamin"] == "P" else "male").set_birth_date(p["tanggal_lahir"])
    enc = EncounterBuilder()
    enc.data.update({
        "identifier": [{"system": f"http://sys-ids.kemkes.go.id/encounter/{ORG}", "value": key}],
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
        "subject": {"reference": fu("pat")}, "period": {"start": t, "end": t},
        "statusHistory": [{"status": "finished", "period": {"start": t, "end": t}}],
        "serviceProvider": {"reference": f"Organization/{ORG}"}})
    b = BundleBuilder("transaction")
    b.add_transaction_entry(pat.build(), fu("pat"), "POST", "Patient")
    b.add_transaction_entry(enc.build(), fu("enc"), "POST", "Encounter")
    m = r["pengukuran"]
    for code, disp, unit, val in (("29463-7", "Body weight", "kg", m.get("berat_badan")),
                                  ("8306-3", "Body height --lying", "cm", m.get("panjang_badan")),
                                  ("9843-4", "Head Occipital-frontal circumference", "cm", m.get("lingkar_kepala")),
                                  ("56072-2", "Circumference Mid upper arm", "cm", m.get("lila"))):
        if val is None:
            continue
        o = ObservationBuilder()
        o.add_identifier(f"http://sys-ids.kemkes.go.id/observation/{ORG}", key + code)
        o.set_status("final").add_category("vital-signs", "Vital Signs").set_code(code, disp)
        o.set_subject(fu("pat")).set_encounter(fu("enc"))
        o.data["effectiveDateTime"] = t  # set_effective_time writes the non-FHIR "effectiveTime"
        o.data["valueQuantity"] = {"value": val, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
        b.add_transaction_entry(o.build(), fu("obs" + code), "POST", "Observation")
    for i, im in enumerate(r.get("imunisasi", [])):
        x = ImmunizationBuilder()
        x.status("completed").vaccine_code({"coding": [{"system": "http://sys-ids.kemkes.go.id/kfa", "code": im["kfa_produk"], "display": im["antigen"]}]})
        x.data["patient"] = {"reference": fu("pat")}
        x.encounter(fu("enc")).occurrence_date_time(t).primary_source(True).lot_number(im["no_batch"]).expiration_date(im["kadaluarsa"])
        b.add_transaction_entry(x.build(), fu("imm%d" % i), "POST", "Immunization")
    return b.build()


def main():
    args = sys.argv[1:]
    seconds = 5.0
    if "--seconds" in args:
        i = args.index("--seconds")
        seconds = float(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit("usage: peer_python.py RECORD.json [--seconds S]")
    raw = open(args[0]).read()
    bundle = Bundle.model_validate(map_record(json.loads(raw)))  # fails loudly if not valid R4B
    resources = len(bundle.entry or [])
    for _ in range(20):  # warm-up
        Bundle.model_validate(map_record(json.loads(raw)))
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(10):
            Bundle.model_validate(map_record(json.loads(raw)))
        n += 10
        dt = time.perf_counter() - t0
        if dt >= seconds:
            break
    print(f"python peer (satusehat-integration builders + fhir.resources R4B): {n / dt:.0f} records/s")
    print(f"RESULT records_per_s {n / dt:.0f} resources {resources}")


if __name__ == "__main__":
    main()
