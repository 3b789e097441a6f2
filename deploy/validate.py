#!/usr/bin/env python3
"""Validate everything under deploy/ and .github/workflows/ against real schemas.

- The SpinApp against the SpinApp CRD's OpenAPI schema, read from
  ../shared/spinkube/core.spinkube.dev_spinapps.yaml (beside the repository;
  never copied into it). Unknown fields are errors, as `kubectl apply
  --validate=strict` would make them.
- Kubernetes' own kinds (ConfigMap, Secret, CronJob) with kubernetes-validate
  in strict mode, against KUBERNETES_VERSION.
- The wiring the schemas cannot see: every variable of spin.toml bound once,
  secret ones from a Secret; every referenced ConfigMap/Secret key defined;
  the runtime config defining every store label spin.toml grants, key-value on
  Redis; the kustomization listing every manifest; the CronJobs calling real
  sweep routes with the sweep secret.
- deploy/grafana/: the dashboard JSON and the Prometheus alert rules:
  structure, every expression parsed by a real PromQL parser
  (promql-parser) and every `for` as a Prometheus duration, and every
  metric they use being one the app exports (README.md's metrics table).
- .github/workflows/*.yml with check-jsonschema's vendored GitHub workflow
  schema.

`--self-test` also breaks copies of the manifests in memory and checks that
each break is reported, so this script cannot silently pass everything.

Run it with scripts/validate-deploy.sh (makes a venv with the pinned tools of
deploy/requirements.txt).
"""

import copy
import json
import pathlib
import re
import subprocess
import sys
import tomllib

import jsonschema
import kubernetes_validate
import promql_parser
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPINKUBE = ROOT / "deploy" / "spinkube"
GRAFANA = ROOT / "deploy" / "grafana"
CRD = ROOT.parent / "shared" / "spinkube" / "core.spinkube.dev_spinapps.yaml"
KUBERNETES_VERSION = "1.33.0"
SWEEP_ROUTES = {"/api/orders/sweep", "/api/notifications/sweep"}
# Manifests that are documentation, applied by hand after editing.
NOT_IN_KUSTOMIZATION = {"secrets.example.yaml", "kustomization.yaml"}


def load_docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def strict_schema(schema):
    """The CRD schema with unknown fields forbidden wherever the CRD lists an
    object's properties and does not ask to keep unknown ones."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def spinapp_validator():
    if not CRD.is_file():
        raise SystemExit(
            f"FAIL: the SpinApp CRD schema is missing: {CRD} (expected beside the repository, "
            "in ../shared/spinkube/; it is a data file this check reads and never copies)"
        )
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    schema = strict_schema(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def check_manifests(manifests, spin, readme, validator):
    """manifests: {file name: [documents]}. Returns a list of problems."""
    problems = []
    objects = {}
    for name, docs in manifests.items():
        for doc in docs:
            kind = doc.get("kind")
            where = f"{name}: {kind}/{doc.get('metadata', {}).get('name')}"
            objects.setdefault(kind, []).append((where, doc))
            if kind == "SpinApp":
                for err in validator.iter_errors(doc):
                    problems.append(f"{where}: {'.'.join(map(str, err.absolute_path))}: {err.message}")
            elif kind == "Kustomization":
                continue
            else:
                try:
                    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
                except kubernetes_validate.ValidationError as e:
                    path = ".".join(str(p) for p in e.absolute_path)
                    problems.append(f"{where}: {path}: {e.message}")
                except kubernetes_validate.SchemaNotFoundError:
                    problems.append(f"{where}: no Kubernetes {KUBERNETES_VERSION} schema for {doc.get('apiVersion')}/{kind}")

    def data_of(kind, obj_name):
        for _, doc in objects.get(kind, []):
            if doc["metadata"]["name"] == obj_name:
                return {**doc.get("data", {}), **doc.get("stringData", {})}
        return None

    def check_ref(where, ref_kind, ref):
        data = data_of(ref_kind, ref["name"])
        if data is None:
            problems.append(f"{where}: refers to {ref_kind} {ref['name']!r}, which no manifest defines")
        elif ref["key"] not in data:
            problems.append(f"{where}: {ref_kind} {ref['name']!r} has no key {ref['key']!r}")

    # Every Spin variable bound exactly once; secrets only from Secrets.
    declared = spin["variables"]
    apps = objects.get("SpinApp", [])
    if len(apps) != 1:
        problems.append(f"expected one SpinApp, found {len(apps)}")
    for where, app in apps:
        bound = {}
        for var in app["spec"].get("variables", []):
            bound[var["name"]] = bound.get(var["name"], 0) + 1
            source = var.get("valueFrom", {})
            if var["name"] not in declared:
                problems.append(f"{where}: variable {var['name']!r} is not declared in spin.toml")
                continue
            secret = declared[var["name"]].get("secret", False)
            if secret and "secretKeyRef" not in source:
                problems.append(f"{where}: variable {var['name']!r} is secret in spin.toml: bind it with secretKeyRef")
            if not secret and "value" not in var and "configMapKeyRef" not in source:
                problems.append(f"{where}: variable {var['name']!r} should come from the ConfigMap")
            if "secretKeyRef" in source:
                check_ref(f"{where}: variable {var['name']!r}", "Secret", source["secretKeyRef"])
            if "configMapKeyRef" in source:
                check_ref(f"{where}: variable {var['name']!r}", "ConfigMap", source["configMapKeyRef"])
        for name in declared:
            if bound.get(name, 0) != 1:
                problems.append(f"{where}: spin.toml variable {name!r} is bound {bound.get(name, 0)} times (want 1)")

        # The runtime config Secret: every label granted in spin.toml defined,
        # key-value on Redis (several replicas share it).
        secret_name = app["spec"].get("runtimeConfig", {}).get("loadFromSecret")
        data = data_of("Secret", secret_name) if secret_name else None
        if not data or "runtime-config.toml" not in data:
            problems.append(f"{where}: runtimeConfig.loadFromSecret must name a Secret with key runtime-config.toml")
        else:
            try:
                runtime = tomllib.loads(data["runtime-config.toml"])
            except tomllib.TOMLDecodeError as e:
                problems.append(f"{where}: runtime-config.toml does not parse: {e}")
                runtime = {}
            kv = runtime.get("key_value_store", {})
            sql = runtime.get("sqlite_database", {})
            for comp_name, comp in spin["component"].items():
                for label in comp.get("key_value_stores", []):
                    if label not in kv:
                        problems.append(f"runtime config: key-value store {label!r} (component {comp_name}) is not defined")
                    elif kv[label].get("type") != "redis":
                        problems.append(f"runtime config: key-value store {label!r} must be on Redis to be shared by replicas")
                for label in comp.get("sqlite_databases", []):
                    if label not in sql:
                        problems.append(f"runtime config: SQLite database {label!r} (component {comp_name}) is not defined")

    # The kustomization lists every manifest (and only existing ones).
    kust = [doc for _, doc in objects.get("Kustomization", [])]
    listed = set(kust[0].get("resources", [])) if kust else set()
    if not kust:
        problems.append("kustomization.yaml is missing")
    for name in manifests:
        if name not in NOT_IN_KUSTOMIZATION and name not in listed:
            problems.append(f"kustomization.yaml does not list {name}")
    for name in listed - set(manifests):
        problems.append(f"kustomization.yaml lists {name}, which does not exist")

    # The CronJobs call each sweep route with the sweep secret.
    called = set()
    for where, job in objects.get("CronJob", []):
        container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        args = " ".join(container.get("command", []) + container.get("args", []))
        url = re.search(r"http://[^/\s]+(/\S*)", args)
        if not url or url.group(1) not in SWEEP_ROUTES:
            problems.append(f"{where}: does not call a sweep route ({sorted(SWEEP_ROUTES)})")
            continue
        called.add(url.group(1))
        if "X-Sweep-Secret: $(SWEEP_SECRET)" not in args:
            problems.append(f"{where}: must send X-Sweep-Secret: $(SWEEP_SECRET)")
        env = {e["name"]: e for e in container.get("env", [])}
        ref = env.get("SWEEP_SECRET", {}).get("valueFrom", {}).get("secretKeyRef")
        if not ref or ref.get("key") != "sweep_secret":
            problems.append(f"{where}: SWEEP_SECRET must come from the Secret key sweep_secret")
        else:
            check_ref(where, "Secret", ref)
    for route in SWEEP_ROUTES - called:
        problems.append(f"no CronJob calls {route}")
    for route in SWEEP_ROUTES:
        if route not in readme:
            problems.append(f"README.md does not mention {route}")
    return problems


def exported_metrics(readme):
    """The metric names README.md's metrics table documents (`shop_...`)."""
    return set(re.findall(r"^\| `(shop_[a-z0-9_]+)`", readme, re.M))


def metric_names_in(expr):
    return set(re.findall(r"\bshop_[a-z0-9_]+", expr))


def promql_problem(expr):
    """Why PromQL's parser refuses `expr`, or None."""
    try:
        promql_parser.parse(expr)
        return None
    except ValueError as e:
        return str(e)


def duration_problem(text):
    try:
        promql_parser.parse_duration(text)
        return None
    except ValueError as e:
        return str(e)


def check_grafana(dashboard, rules, metrics):
    problems = []
    if not metrics:
        problems.append("README.md lists no metrics (a table row starting with | `shop_...`)")
    panels = dashboard.get("panels", [])
    if not dashboard.get("title") or not panels:
        problems.append("dashboard: needs a title and panels")
    used = set()
    for panel in panels:
        if panel.get("type") == "row":
            continue
        for key in ("title", "type", "gridPos", "targets"):
            if key not in panel:
                problems.append(f"dashboard panel {panel.get('title')!r}: missing {key}")
        for target in panel.get("targets", []):
            if not target.get("expr"):
                problems.append(f"dashboard panel {panel.get('title')!r}: a target without expr")
            elif why := promql_problem(target["expr"]):
                problems.append(f"dashboard panel {panel.get('title')!r}: not PromQL: {why}: {target['expr']}")
            used |= metric_names_in(target.get("expr", ""))
    for name in sorted(used - metrics):
        problems.append(f"dashboard uses {name}, which the app does not export (README.md metrics table)")

    groups = rules.get("groups") if isinstance(rules, dict) else None
    if not groups:
        problems.append("alert rules: need `groups`")
        groups = []
    seen = set()
    for group in groups:
        if not group.get("name") or not group.get("rules"):
            problems.append(f"alert rules: group {group.get('name')!r} needs a name and rules")
        if set(group) - {"name", "interval", "rules", "limit", "labels"}:
            problems.append(f"alert rules: group {group.get('name')!r} has unknown keys {sorted(set(group) - {'name', 'interval', 'rules', 'limit', 'labels'})}")
        for rule in group.get("rules", []):
            name = rule.get("alert")
            if not name or not rule.get("expr"):
                problems.append(f"alert rules: every rule needs alert and expr ({rule})")
                continue
            unknown = set(rule) - {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            if unknown:
                problems.append(f"alert {name}: unknown keys {sorted(unknown)}")
            if name in seen:
                problems.append(f"alert {name}: defined twice")
            seen.add(name)
            if "for" in rule and (why := duration_problem(str(rule["for"]))):
                problems.append(f"alert {name}: `for` is not a Prometheus duration: {why}")
            if why := promql_problem(rule["expr"]):
                problems.append(f"alert {name}: not PromQL: {why}")
            if not rule.get("labels", {}).get("severity"):
                problems.append(f"alert {name}: needs labels.severity")
            if not rule.get("annotations", {}).get("summary"):
                problems.append(f"alert {name}: needs annotations.summary")
            names = metric_names_in(rule["expr"])
            if not names:
                problems.append(f"alert {name}: uses no shop_ metric")
            for metric in sorted(names - metrics):
                problems.append(f"alert {name}: uses {metric}, which the app does not export")
    return problems


def check_workflows():
    files = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    if not files:
        return ["no workflow in .github/workflows/"]
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return [f"workflows: {result.stdout.strip()} {result.stderr.strip()}"]
    return []


def self_test(manifests, spin, readme, validator, dashboard, rules, metrics):
    """Break one thing at a time; each must be reported."""

    def app_of(m):
        return m["spinapp.yaml"][0]

    def job_of(m):
        return m["cronjob-orders-sweep.yaml"][0]

    breaks = {
        "a variable left out": lambda m: app_of(m)["spec"]["variables"].pop(0),
        "a secret from the ConfigMap": lambda m: next(
            v for v in app_of(m)["spec"]["variables"] if v["name"] == "stripe_secret_key"
        ).update(valueFrom={"configMapKeyRef": {"name": "shop-config", "key": "stripe_secret_key"}}),
        "an unknown SpinApp field": lambda m: app_of(m)["spec"].update(replica=3),
        "a wrong SpinApp type": lambda m: app_of(m)["spec"].update(replicas="three"),
        "an unknown CronJob field": lambda m: job_of(m)["spec"].update(schedul="* * * * *"),
        "a CronJob calling no sweep": lambda m: job_of(m)["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"].pop(),
        "a missing ConfigMap key": lambda m: m["configmap.yaml"][0]["data"].pop("store_name"),
        "carts not on Redis": lambda m: m["secrets.example.yaml"][2]["stringData"].update(
            {"runtime-config.toml": m["secrets.example.yaml"][2]["stringData"]["runtime-config.toml"].replace('"redis"', '"spin"', 1)}
        ),
    }
    failures = []
    for what, breaker in breaks.items():
        broken = copy.deepcopy(manifests)
        breaker(broken)
        if not check_manifests(broken, spin, readme, validator):
            failures.append(f"self-test: {what} was not reported")
    def first_rule(g):
        return g["rules"]["groups"][0]["rules"][0]

    def first_query(g):
        return g["dashboard"]["panels"][0]["targets"][0]

    grafana_breaks = {
        "an alert on an unknown metric": lambda g: first_rule(g).update(expr="shop_no_such_metric > 0"),
        "a malformed `for`": lambda g: first_rule(g).update({"for": "ten minutes"}),
        "an alert expression that is not PromQL": lambda g: first_rule(g).update(expr="max by (sweep (shop_sweep_runs_total) > 600"),
        "a dashboard query that is not PromQL": lambda g: first_query(g).update(expr="sum by status (shop_orders)"),
    }
    for what, breaker in grafana_breaks.items():
        broken = copy.deepcopy({"dashboard": dashboard, "rules": rules})
        breaker(broken)
        if not check_grafana(broken["dashboard"], broken["rules"], metrics):
            failures.append(f"self-test: {what} was not reported")
    return failures, len(breaks) + len(grafana_breaks)


def main():
    spin = tomllib.loads((ROOT / "spin.toml").read_text())
    readme = (ROOT / "README.md").read_text()
    validator = spinapp_validator()
    manifests = {p.name: load_docs(p) for p in sorted(SPINKUBE.glob("*.yaml"))}
    problems = check_manifests(manifests, spin, readme, validator)
    dashboard = json.loads((GRAFANA / "shop-dashboard.json").read_text())
    rules = yaml.safe_load((GRAFANA / "alert-rules.yaml").read_text())
    metrics = exported_metrics(readme)
    problems += check_grafana(dashboard, rules, metrics)
    problems += check_workflows()
    checks = sum(len(d) for d in manifests.values())
    if "--self-test" in sys.argv:
        failures, n = self_test(manifests, spin, readme, validator, dashboard, rules, metrics)
        problems += failures
        print(f"self-test: {n - len(failures)} of {n} deliberate breaks reported")
    for problem in problems:
        print(f"FAIL {problem}")
    print(
        f"validated {checks} manifests in deploy/spinkube (SpinApp CRD from {CRD}, Kubernetes {KUBERNETES_VERSION}), "
        f"the dashboard, {sum(len(g.get('rules', [])) for g in rules.get('groups', []))} alert rules and the workflows: "
        + ("ok" if not problems else f"{len(problems)} problems")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
