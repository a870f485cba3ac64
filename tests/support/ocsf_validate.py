"""Validates OCSF JSON lines against the OCSF schema that the
`ocsf-json-schema` package ships (its `ocsf/<version>.json`, the export of
the OCSF server), turned into JSON Schema draft 2020-12 per class and
profile set by that package, and checked by `jsonschema`.

Usage: ocsf_validate.py VERSION FILE. Each line's class comes from its
`class_uid`, its profiles from `metadata.profiles`. Prints one JSON object:
{"records": N, "classes": {uid: count}, "errors": [...]}; exits 1 when a
record is invalid. Installed by `cargo xtask setup` (a venv in the target
directory); run by tests/fleet.rs.
"""

import json
import sys

import jsonschema
from ocsf_json_schema import OcsfJsonSchema, OcsfJsonSchemaEmbedded, get_ocsf_schema


def main() -> int:
    version, path = sys.argv[1], sys.argv[2]
    ocsf = OcsfJsonSchema(get_ocsf_schema(version))
    embedded = OcsfJsonSchemaEmbedded(ocsf)
    validators = {}
    classes = {}
    errors = []
    records = 0
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            records += 1
            record = json.loads(line)
            uid = record.get("class_uid")
            profiles = tuple(sorted(record.get("metadata", {}).get("profiles", [])))
            key = (uid, profiles)
            if key not in validators:
                name = ocsf.lookup_class_name_from_uid(uid)
                schema = embedded.get_class_schema(name, list(profiles))
                jsonschema.Draft202012Validator.check_schema(schema)
                validators[key] = jsonschema.Draft202012Validator(schema)
            classes[str(uid)] = classes.get(str(uid), 0) + 1
            for e in validators[key].iter_errors(record):
                where = "/".join(str(p) for p in e.absolute_path) or "(record)"
                errors.append(f"line {number} (class {uid}, {record.get('unmapped', {}).get('nono_op')}): {where}: {e.message}")
    print(json.dumps({"records": records, "classes": classes, "errors": errors[:50], "error_count": len(errors)}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
