#!/usr/bin/env python3
"""test_k8s_manifests.py - deploy/kubernetes validated without a cluster:
every document is checked against a JSON-schema-style description of the
fields spoke's manifests use (types, required keys, enums; unknown keys in
the described objects are errors, so a typo such as `readinesProbe` fails),
then across documents: selectors match the pod labels, probes use
/v1/ready and /health on a declared port, every referenced ConfigMap,
Secret key, PVC and volume exists, the shared model cache is mounted
read-only by the Deployment and read-write by the pull Job, the pull Job
fetches the model the ConfigMap serves, SIGTERM drain fits in
terminationGracePeriodSeconds, the HPA targets the Deployment on
llm_queue_depth, the ServiceMonitor selects the Service; the ConfigMap's
spoke.yaml serves that model with initial_load, API keys from the Secret
and its task history on a writable volume. A self-test first shows the
validator rejects a misspelt field, a wrong type and a bad enum. Needs python3-yaml (skips
with 77 without it)."""
import os
import re
import sys

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml is not installed (tools/test-deps.sh installs it)")
    sys.exit(77)

SRC = os.environ.get("SPOKE_SRC_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DIR = os.path.join(SRC, "deploy", "kubernetes")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("  FAIL:", what)
    return cond


# ---- a small JSON-schema subset: {"type", "required", "properties", "items", "enum", "additional"}
S, I, B = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
QTY = {"type": ["string", "integer"], "pattern": r"^[0-9.]+(m|Ki|Mi|Gi|Ti)?$"}
LABELS = {"type": "object", "additional": S}
META = {"type": "object", "required": ["name"], "properties": {"name": S, "labels": LABELS, "annotations": LABELS,
                                                                 "namespace": S}}
SELECTOR = {"type": "object", "required": ["matchLabels"], "properties": {"matchLabels": LABELS}}
PORT_REF = {"type": ["string", "integer"]}
PROBE = {"type": "object", "required": ["httpGet"], "properties": {
    "httpGet": {"type": "object", "required": ["path", "port"], "properties": {"path": S, "port": PORT_REF}},
    "periodSeconds": I, "failureThreshold": I, "timeoutSeconds": I, "initialDelaySeconds": I,
    "successThreshold": I}}
RESOURCES = {"type": "object", "properties": {"requests": {"type": "object", "additional": QTY},
                                              "limits": {"type": "object", "additional": QTY}}}
SEC_CTX = {"type": "object", "properties": {"allowPrivilegeEscalation": B, "readOnlyRootFilesystem": B,
                                            "runAsNonRoot": B, "capabilities": {"type": "object", "properties": {
                                                "drop": {"type": "array", "items": S}}}}}
ENV = {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
    "name": S, "value": S, "valueFrom": {"type": "object", "properties": {
        "secretKeyRef": {"type": "object", "required": ["name", "key"], "properties": {"name": S, "key": S,
                                                                                     "optional": B}},
        "configMapKeyRef": {"type": "object", "required": ["name", "key"], "properties": {"name": S, "key": S}}}}}}}
CONTAINER = {"type": "object", "required": ["name", "image"], "properties": {
    "name": S, "image": S, "args": {"type": "array", "items": S}, "command": {"type": "array", "items": S},
    "ports": {"type": "array", "items": {"type": "object", "required": ["containerPort"], "properties": {
        "name": S, "containerPort": I, "protocol": {"enum": ["TCP", "UDP"]}}}},
    "env": ENV, "readinessProbe": PROBE, "livenessProbe": PROBE, "startupProbe": PROBE,
    "lifecycle": {"type": "object", "properties": {"preStop": {"type": "object", "properties": {
        "sleep": {"type": "object", "required": ["seconds"], "properties": {"seconds": I}},
        "exec": {"type": "object", "properties": {"command": {"type": "array", "items": S}}}}}}},
    "resources": RESOURCES, "securityContext": SEC_CTX,
    "volumeMounts": {"type": "array", "items": {"type": "object", "required": ["name", "mountPath"], "properties": {
        "name": S, "mountPath": S, "readOnly": B, "subPath": S}}}}}
VOLUME = {"type": "object", "required": ["name"], "properties": {
    "name": S, "configMap": {"type": "object", "required": ["name"], "properties": {"name": S}},
    "secret": {"type": "object", "required": ["secretName"], "properties": {"secretName": S}},
    "persistentVolumeClaim": {"type": "object", "required": ["claimName"], "properties": {"claimName": S,
                                                                                         "readOnly": B}},
    "emptyDir": {"type": "object", "properties": {"sizeLimit": QTY, "medium": S}}}}
POD_SPEC = {"type": "object", "required": ["containers"], "properties": {
    "containers": {"type": "array", "items": CONTAINER}, "initContainers": {"type": "array", "items": CONTAINER},
    "volumes": {"type": "array", "items": VOLUME}, "terminationGracePeriodSeconds": I,
    "restartPolicy": {"enum": ["Always", "OnFailure", "Never"]},
    "securityContext": {"type": "object", "properties": {"runAsNonRoot": B, "runAsUser": I, "runAsGroup": I,
                                                         "fsGroup": I}}}}
POD_TEMPLATE = {"type": "object", "required": ["metadata", "spec"], "properties": {
    "metadata": {"type": "object", "properties": {"labels": LABELS, "annotations": LABELS}}, "spec": POD_SPEC}}

SCHEMAS = {
    ("v1", "ConfigMap"): {"required": ["data"], "properties": {"data": {"type": "object", "additional": S}}},
    ("v1", "Secret"): {"required": ["stringData"], "properties": {"type": S, "stringData": {"type": "object",
                                                                                           "additional": S}}},
    ("v1", "PersistentVolume"): {"required": ["spec"], "properties": {"spec": {"type": "object", "required": [
        "capacity", "accessModes"], "properties": {
        "capacity": {"type": "object", "properties": {"storage": QTY}},
        "accessModes": {"type": "array", "items": {"enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany",
                                                            "ReadWriteOncePod"]}},
        "persistentVolumeReclaimPolicy": {"enum": ["Retain", "Delete", "Recycle"]}, "storageClassName": S,
        "nfs": {"type": "object", "required": ["server", "path"], "properties": {"server": S, "path": S}}}}}},
    ("v1", "PersistentVolumeClaim"): {"required": ["spec"], "properties": {"spec": {"type": "object", "required": [
        "accessModes", "resources"], "properties": {
        "accessModes": {"type": "array", "items": {"enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany",
                                                            "ReadWriteOncePod"]}},
        "storageClassName": S, "selector": SELECTOR,
        "resources": {"type": "object", "properties": {"requests": {"type": "object", "properties": {
            "storage": QTY}}}}}}}},
    ("batch/v1", "Job"): {"required": ["spec"], "properties": {"spec": {"type": "object", "required": ["template"],
                                                                        "properties": {
        "backoffLimit": I, "ttlSecondsAfterFinished": I, "template": POD_TEMPLATE}}}},
    ("apps/v1", "Deployment"): {"required": ["spec"], "properties": {"spec": {"type": "object", "required": [
        "selector", "template"], "properties": {
        "replicas": I, "selector": SELECTOR, "template": POD_TEMPLATE,
        "strategy": {"type": "object", "properties": {"type": {"enum": ["RollingUpdate", "Recreate"]},
                                                      "rollingUpdate": {"type": "object", "properties": {
                                                          "maxUnavailable": PORT_REF, "maxSurge": PORT_REF}}}}}}}},
    ("v1", "Service"): {"required": ["spec"], "properties": {"spec": {"type": "object", "required": [
        "selector", "ports"], "properties": {
        "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}, "selector": LABELS,
        "ports": {"type": "array", "items": {"type": "object", "required": ["port"], "properties": {
            "name": S, "port": I, "targetPort": PORT_REF, "protocol": {"enum": ["TCP", "UDP"]}}}}}}}},
    ("policy/v1", "PodDisruptionBudget"): {"required": ["spec"], "properties": {"spec": {"type": "object",
                                                                                        "properties": {
        "minAvailable": PORT_REF, "maxUnavailable": PORT_REF, "selector": SELECTOR}}}},
    ("autoscaling/v2", "HorizontalPodAutoscaler"): {"required": ["spec"], "properties": {"spec": {
        "type": "object", "required": ["scaleTargetRef", "maxReplicas", "metrics"], "properties": {
            "scaleTargetRef": {"type": "object", "required": ["apiVersion", "kind", "name"], "properties": {
                "apiVersion": S, "kind": S, "name": S}},
            "minReplicas": I, "maxReplicas": I,
            "metrics": {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {
                "type": {"enum": ["Pods", "Resource", "Object", "External"]},
                "pods": {"type": "object", "required": ["metric", "target"], "properties": {
                    "metric": {"type": "object", "required": ["name"], "properties": {"name": S}},
                    "target": {"type": "object", "required": ["type"], "properties": {
                        "type": {"enum": ["AverageValue", "Value", "Utilization"]}, "averageValue": QTY}}}}}}},
            "behavior": {"type": "object", "additional": {"type": "object", "properties": {
                "stabilizationWindowSeconds": I, "policies": {"type": "array", "items": {
                    "type": "object", "required": ["type", "value", "periodSeconds"], "properties": {
                        "type": {"enum": ["Pods", "Percent"]}, "value": I, "periodSeconds": I}}}}}}}}}},
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {"required": ["spec"], "properties": {"spec": {
        "type": "object", "required": ["selector", "endpoints"], "properties": {
            "selector": SELECTOR, "endpoints": {"type": "array", "items": {"type": "object", "properties": {
                "port": S, "path": S, "interval": {"type": "string", "pattern": r"^[0-9]+[smh]$"}}}}}}}},
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"): {"properties": {"resources": {"type": "array",
                                                                                          "items": S}}},
}
PY_TYPES = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list}


def validate(v, schema, path, errs):
    t = schema.get("type")
    if t:
        ts = t if isinstance(t, list) else [t]
        if not any(isinstance(v, PY_TYPES[x]) and not (x == "integer" and isinstance(v, bool)) for x in ts):
            errs.append("%s: expected %s, got %r" % (path, "/".join(ts), v))
            return
    if "enum" in schema and v not in schema["enum"]:
        errs.append("%s: %r is not one of %s" % (path, v, schema["enum"]))
    if "pattern" in schema and isinstance(v, str) and not re.match(schema["pattern"], v):
        errs.append("%s: %r does not match %s" % (path, v, schema["pattern"]))
    if isinstance(v, dict) and (schema.get("type") == "object" or "properties" in schema or "additional" in schema):
        for k in schema.get("required", []):
            if k not in v:
                errs.append("%s: '%s' is required" % (path, k))
        props = schema.get("properties", {})
        for k, x in v.items():
            if k in props:
                validate(x, props[k], path + "." + k, errs)
            elif "additional" in schema:
                validate(x, schema["additional"], path + "." + k, errs)
            else:
                errs.append("%s: unknown field '%s'" % (path, k))
    if isinstance(v, list) and "items" in schema:
        for i, x in enumerate(v):
            validate(x, schema["items"], "%s[%d]" % (path, i), errs)


def negative_selftest():
    """the validator catches what it should (so the test can fail)"""
    errs = []
    validate({"readinesProbe": {}}, CONTAINER, "c", errs)
    validate({"name": "x", "image": "i", "ports": [{"containerPort": "80"}]}, CONTAINER, "c", errs)
    validate({"type": "Pods", "pods": {"metric": {"name": "m"}, "target": {"type": "Average"}}},
             SCHEMAS[("autoscaling/v2", "HorizontalPodAutoscaler")]["properties"]["spec"]["properties"]["metrics"][
                 "items"], "m", errs)
    return len(errs) >= 4


check(negative_selftest(), "the validator rejects a misspelt field, a wrong type and a bad enum")

docs = []
for name in sorted(os.listdir(DIR)):
    if not name.endswith(".yaml"):
        continue
    with open(os.path.join(DIR, name)) as f:
        for d in yaml.safe_load_all(f):
            if d:
                docs.append((name, d))
check(len(docs) >= 10, "manifests found (%d documents)" % len(docs))
by_kind = {}
for name, d in docs:
    key = (d.get("apiVersion"), d.get("kind"))
    schema = SCHEMAS.get(key)
    if not check(schema is not None, "%s: known apiVersion/kind %s" % (name, key)):
        continue
    full = {"type": "object", "required": ["apiVersion", "kind"] + schema.get("required", []),
            "properties": dict(schema.get("properties", {}), apiVersion=S, kind=S, metadata=META)}
    if key[1] != "Kustomization":
        full["required"].append("metadata")
    errs = []
    validate(d, full, "%s:%s" % (name, key[1]), errs)
    for e in errs:
        check(False, e)
    by_kind.setdefault(key[1], []).append(d)

kust = by_kind.get("Kustomization", [{}])[0]
listed = set(kust.get("resources", []))
files = {n for n in os.listdir(DIR) if n.endswith(".yaml") and n != "kustomization.yaml"}
check(listed == files, "kustomization lists every manifest (%s vs %s)" % (sorted(listed), sorted(files)))


def one(kind):
    xs = by_kind.get(kind, [])
    check(len(xs) == 1, "exactly one %s" % kind)
    return xs[0] if xs else {}


dep, svc, cm, sec = one("Deployment"), one("Service"), one("ConfigMap"), one("Secret")
job, pvc, hpa, sm, pdb = one("Job"), one("PersistentVolumeClaim"), one("HorizontalPodAutoscaler"), \
    one("ServiceMonitor"), one("PodDisruptionBudget")
pod_labels = dep.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
sel = dep.get("spec", {}).get("selector", {}).get("matchLabels", {})
check(sel and all(pod_labels.get(k) == v for k, v in sel.items()), "Deployment selector matches its pod labels")
check(svc.get("spec", {}).get("selector") and all(pod_labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
      "Service selects the pods")
check(all(pod_labels.get(k) == v for k, v in pdb.get("spec", {}).get("selector", {}).get("matchLabels", {}).items()),
      "PodDisruptionBudget selects the pods")
check(all(svc.get("metadata", {}).get("labels", {}).get(k) == v
          for k, v in sm.get("spec", {}).get("selector", {}).get("matchLabels", {}).items()),
      "ServiceMonitor selects the Service")
ann = dep.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/path") == "/metrics",
      "scrape annotations")

pod = dep.get("spec", {}).get("template", {}).get("spec", {})
c = (pod.get("containers") or [{}])[0]
ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
check(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/v1/ready", "readiness probe is /v1/ready")
check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/health", "liveness probe is /health")
for pr in ("readinessProbe", "livenessProbe", "startupProbe"):
    port = c.get(pr, {}).get("httpGet", {}).get("port")
    check(port in ports or port in ports.values(), "%s port %s is declared" % (pr, port))
for p in svc.get("spec", {}).get("ports", []):
    check(p.get("targetPort") in ports or p.get("targetPort") in ports.values(), "Service targetPort is declared")
check(c.get("args", [])[:1] == ["serve"], "the container runs spoke serve")

secret_keys = set(sec.get("stringData", {}))
cm_name, sec_name = cm.get("metadata", {}).get("name"), sec.get("metadata", {}).get("name")
pvc_name = pvc.get("metadata", {}).get("name")


def check_refs(podspec, what):
    vols = {v["name"]: v for v in podspec.get("volumes", [])}
    for ct in podspec.get("containers", []):
        for m in ct.get("volumeMounts", []):
            check(m["name"] in vols, "%s: volume %s exists" % (what, m["name"]))
        for e in ct.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                check(ref["name"] == sec_name and ref["key"] in secret_keys,
                      "%s: secret %s/%s exists" % (what, ref["name"], ref["key"]))
    for v in vols.values():
        if "configMap" in v:
            check(v["configMap"]["name"] == cm_name, "%s: ConfigMap %s exists" % (what, v["configMap"]["name"]))
        if "persistentVolumeClaim" in v:
            check(v["persistentVolumeClaim"]["claimName"] == pvc_name, "%s: PVC exists" % what)
    return vols


vols = check_refs(pod, "Deployment")
jpod = job.get("spec", {}).get("template", {}).get("spec", {})
jvols = check_refs(jpod, "Job")
models_mount = [m for m in c.get("volumeMounts", []) if vols.get(m["name"], {}).get("persistentVolumeClaim")]
check(models_mount and models_mount[0].get("readOnly") is True and
      vols[models_mount[0]["name"]]["persistentVolumeClaim"].get("readOnly") is True,
      "replicas mount the model cache read-only")
jc = (jpod.get("containers") or [{}])[0]
jmount = [m for m in jc.get("volumeMounts", []) if jvols.get(m["name"], {}).get("persistentVolumeClaim")]
check(jmount and not jmount[0].get("readOnly"), "the pull Job mounts the cache read-write")
env = {e["name"]: e.get("value") for e in c.get("env", [])}
jenv = {e["name"]: e.get("value") for e in jc.get("env", [])}
check(env.get("HF_HUB_OFFLINE") == "1", "replicas never download (HF_HUB_OFFLINE=1)")
check(env.get("SPOKE_HOME") == jenv.get("SPOKE_HOME") == models_mount[0]["mountPath"] == jmount[0]["mountPath"]
      if models_mount and jmount else False, "Job and replicas share SPOKE_HOME on the volume")
check("ReadWriteMany" in pvc.get("spec", {}).get("accessModes", []), "the cache volume is ReadWriteMany")

# the served model is what the Job pulls; spoke.yaml itself
cfg = yaml.safe_load(cm.get("data", {}).get("spoke.yaml", "")) or {}
model = (cfg.get("models") or [{}])[0]
frm = model.get("from", "")
m = re.match(r"^(?:huggingface:)?(?:huggingface\.co/)?([\w.-]+/[\w.-]+)(?:[@:]([\w.-]+))?$", frm)
check(m is not None, "model id %r has spoke's syntax" % frm)
jargs = jc.get("args", [])
if m and jargs:
    check(jargs[0] == "pull" and jargs[1] == m.group(1) + "@" + (m.group(2) or "main"),
          "the Job pulls the served model (%s)" % jargs[:2])
    files = [f.get("path") for f in model.get("files", [])]
    check("--file" in jargs and jargs[jargs.index("--file") + 1] in files, "the Job pulls the served file")
    check("--name" not in jargs, "the Job uses the default cache name, as the server does")
params = model.get("params", {})
check(params.get("initial_load") is True, "initial_load: true (readiness waits for the model)")
check(isinstance(params.get("max_concurrency"), int) and params["max_concurrency"] >= 1, "max_concurrency")
server = cfg.get("server", {})
check(server.get("host") == "0.0.0.0" and server.get("api_keys"), "listens on all interfaces with API keys")
for k in server.get("api_keys", []) + [params.get("hf_token", "")]:
    mm = re.match(r"^\$\{(?:secrets|env):(\w+)\}$", k)
    check(mm and mm.group(1) in secret_keys and mm.group(1) in env, "%s comes from the Secret via env" % k)
check(server.get("metrics_public") is True, "metrics_public for the scrapers")
grace_ms = server.get("limits", {}).get("shutdown_grace_ms", 5000)
tgps = pod.get("terminationGracePeriodSeconds", 30)
prestop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
check(prestop + grace_ms / 1000 + 5 <= tgps, "preStop %ss + drain %ss + 5s fit in terminationGracePeriodSeconds %s"
      % (prestop, grace_ms / 1000, tgps))
check(server.get("port") in ports.values(), "spoke.yaml port is the container port")
hist = server.get("task_history", {}).get("path", "")
check(any(hist.startswith(mm["mountPath"] + "/") and vols.get(mm["name"], {}).get("emptyDir") is not None
          for mm in c.get("volumeMounts", [])), "the task history is on a writable volume")
strategy = dep.get("spec", {}).get("strategy", {}).get("rollingUpdate", {})
check(strategy.get("maxUnavailable") == 0, "rolling updates never drop below the replica count")

ref = hpa.get("spec", {}).get("scaleTargetRef", {})
check(ref.get("kind") == "Deployment" and ref.get("name") == dep.get("metadata", {}).get("name"),
      "HPA scales the Deployment")
mets = [x.get("pods", {}).get("metric", {}).get("name") for x in hpa.get("spec", {}).get("metrics", [])]
check("llm_queue_depth" in mets, "HPA scales on llm_queue_depth")
check(hpa.get("spec", {}).get("minReplicas", 1) >= pdb.get("spec", {}).get("minAvailable", 0) + 1,
      "minReplicas leaves room for the disruption budget")
# the real config reader on the ConfigMap's spoke.yaml, with the Secret's values in the environment
spoke = os.environ.get("SPOKE_BIN", "")
if spoke and os.path.exists(spoke):
    import subprocess
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(cm.get("data", {}).get("spoke.yaml", ""))
    env = dict(os.environ, **sec.get("stringData", {}))
    r = subprocess.run([spoke, "serve", "--check-config", "-c", f.name], capture_output=True, text=True, env=env,
                       timeout=30)
    os.unlink(f.name)
    print(r.stdout, end="")
    check(r.returncode == 0 and "config OK" in r.stdout and "WARN" not in r.stderr,
          "spoke serve --check-config accepts the ConfigMap (rc %d, %s)" % (r.returncode, r.stderr.strip()[:300]))
else:
    print("note: SPOKE_BIN not built; spoke.yaml checked by the rules above only")

if failures:
    print("test_k8s_manifests: %d check(s) failed" % len(failures))
    sys.exit(1)
print("test_k8s_manifests: all checks passed (%d documents)" % len(docs))
