#!/usr/bin/env python3
"""Extracts what NemoClaw's OCSF test checks from the OCSF schema repository.

Usage: extract.py SCHEMA_GIT_DIR COMMIT > required.json

For each event class NemoClaw emits: its uids, every attribute required by the class and its
`extends` chain (non-profile `$include`s merged in), and, for each required object-typed
attribute, the object's required attributes (its `extends` chain too), recursively, with the
JSON type each must have (`if_present`: the same for optional object attributes, which
apply when the event carries that object); every attribute name the class has, profiles'
included (`attributes`); the object constraints (`at_least_one`, `just_one`); and the enum
ids of every `*_id` attribute at the top level and one object level down (profiles' attributes
included: `action_id`, `disposition_id` come from `security_control`), for checking ids.
"""
import json
import subprocess
import sys

GIT, COMMIT = sys.argv[1], sys.argv[2]
CLASSES = [
    "events/system/file_activity.json",
    "events/system/process_activity.json",
    "events/network/network_activity.json",
    "events/application/api_activity.json",
    "events/findings/detection_finding.json",
    "events/discovery/device_config_state_change.json",
]


def show(path):
    out = subprocess.run(["git", "--git-dir", GIT, "show", f"{COMMIT}:{path}"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def ls(prefix):
    out = subprocess.run(["git", "--git-dir", GIT, "ls-tree", "-r", "--name-only", COMMIT, prefix],
                         check=True, capture_output=True, text=True).stdout
    return out.split()


DICT = show("dictionary.json")
TYPES = DICT["types"]["attributes"]
CATEGORIES = show("categories.json")["attributes"]
EVENTS = {}
for p in ls("events/"):
    if p.endswith(".json"):
        d = show(p)
        EVENTS[d["name"]] = (p, d)
OBJECTS = {}
for p in ls("objects/"):
    if p.endswith(".json"):
        d = show(p)
        OBJECTS[d["name"]] = d


def merge_attrs(base, child):
    out = {k: dict(v) for k, v in base.items()}
    for k, v in child.items():
        if k == "$include":
            continue
        merged = dict(out.get(k, {}))
        for kk, vv in v.items():
            if kk == "enum" and "enum" in merged:
                merged["enum"] = {**merged["enum"], **vv}
            else:
                merged[kk] = vv
        out[k] = merged
    return out


def own_attrs(d, profiles=False):
    """A file's attributes with its `$include`s merged in (profiles' only if asked: their
    attributes are part of an event only when it applies the profile)."""
    attrs = {}
    for inc in d.get("attributes", {}).get("$include", []):
        if profiles or not inc.startswith("profiles/"):
            attrs = merge_attrs(attrs, own_attrs(show(inc), profiles))
    return merge_attrs(attrs, d.get("attributes", {}))


def event_chain(name, profiles=False):
    p, d = EVENTS[name]
    attrs = event_chain(d["extends"], profiles) if d.get("extends") else {}
    return merge_attrs(attrs, own_attrs(d, profiles))


def object_attrs(name):
    d = OBJECTS[name]
    attrs = object_attrs(d["extends"]) if d.get("extends") and d["extends"] in OBJECTS else {}
    return merge_attrs(attrs, own_attrs(d))


def object_constraints(name):
    d = OBJECTS[name]
    if d.get("constraints"):
        return d["constraints"]
    if d.get("extends") in OBJECTS:
        return object_constraints(d["extends"])
    return {}


def json_type(attr_name, attr):
    t = attr.get("type") or DICT["attributes"][attr_name]["type"]
    is_array = attr.get("is_array", DICT["attributes"].get(attr_name, {}).get("is_array", False))
    if t in OBJECTS:
        base = "object"
    else:
        while t in TYPES and TYPES[t].get("type"):
            t = TYPES[t]["type"]
        base = {"string_t": "string", "integer_t": "integer", "long_t": "integer",
                "float_t": "number", "boolean_t": "boolean", "timestamp_t": "integer",
                "object_t": "object", "json_t": "any"}[t]
    return ("array" if is_array else base), (attr.get("type") or DICT["attributes"][attr_name]["type"])


def enum_of(attr_name, attr):
    e = attr.get("enum") or DICT["attributes"].get(attr_name, {}).get("enum")
    if e is None:
        return None
    merged = dict(DICT["attributes"].get(attr_name, {}).get("enum", {}))
    merged.update(attr.get("enum", {}))
    return sorted(int(k) for k in merged)


def required_paths(attrs, prefix, out, constraints, seen):
    for name, attr in sorted(attrs.items()):
        if attr.get("requirement") != "required":
            continue
        jt, t = json_type(name, attr)
        path = prefix + name
        out.append({"path": path, "type": jt})
        if t in OBJECTS and t not in seen:
            oattrs = object_attrs(t)
            c = object_constraints(t)
            if c:
                constraints[path] = c
            required_paths(oattrs, path + ".", out, constraints, seen | {t})


def enums(attrs, prefix, depth, out):
    for name, attr in sorted(attrs.items()):
        if name.endswith("_id"):
            e = enum_of(name, attr)
            if e is not None:
                out[prefix + name] = e
        if depth > 0:
            jt, t = json_type(name, attr)
            if t in OBJECTS:
                enums(object_attrs(t), prefix + name + ".", depth - 1, out)


result = {
    "_source": {
        "repository": "https://github.com/ocsf/ocsf-schema",
        "commit": COMMIT,
        "version": show("version.json")["version"],
        "paths": ["dictionary.json", "categories.json"] + CLASSES
                 + ["their `extends` chains under events/", "objects/*.json", "includes/*.json"],
        "generator": "nemoclaw-userspace/tests/data/ocsf/extract.py",
    },
    "classes": {},
}
for p in CLASSES:
    d = show(p)
    attrs = event_chain(d["name"])
    cat = d.get("category")
    chain = d
    while cat is None:
        chain = EVENTS[chain["extends"]][1]
        cat = chain.get("category")
    cat_uid = CATEGORIES[cat]["uid"]
    class_uid = cat_uid * 1000 + d["uid"]
    required, constraints = [], {}
    required_paths(attrs, "", required, constraints, frozenset())
    # Optional object attributes the mapper may fill: when present, their objects'
    # required attributes must be too.
    all_attrs = event_chain(d["name"], profiles=True)
    if_present = {}
    for name, attr in sorted(all_attrs.items()):
        jt, t = json_type(name, attr)
        if t in OBJECTS and attr.get("requirement") != "required":
            sub, subc = [], {}
            c = object_constraints(t)
            if c:
                subc[name] = c
            required_paths(object_attrs(t), name + ".", sub, subc, frozenset({t}))
            if sub or subc:
                if_present[name] = {"required": sub, "constraints": subc}
    en = {}
    enums(event_chain(d["name"], profiles=True), "", 1, en)
    result["classes"][str(class_uid)] = {
        "name": d["name"],
        "caption": d["caption"],
        "category_uid": cat_uid,
        "class_uid": class_uid,
        "activity_ids": enum_of("activity_id", attrs["activity_id"]),
        "required": required,
        "constraints": constraints,
        "if_present": if_present,
        "attributes": sorted(k for k in all_attrs if not k.startswith("$")),
        "enums": en,
    }
json.dump(result, sys.stdout, indent=1, sort_keys=True)
print()
