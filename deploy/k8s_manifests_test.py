"""Checks the Kubernetes manifests in deploy/k8s (issue 14).

Every YAML file parses; every kustomization's resources and patches exist;
the base holds what a fleet needs (Deployment with gRPC probes, resources
and anti-affinity, Service, ReadWriteMany claim, PodDisruptionBudget,
HorizontalPodAutoscaler on a Prometheus metric, ServiceMonitor, etcd
StatefulSet, flags ConfigMap); every flag the manifests pass to twinserve
exists in `twinserve --help`; and the plain-text health listener the
probes use answers grpc.health.v1 on a real server. When kubectl is on the
machine, each overlay is also rendered with `kubectl kustomize`.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import grpc
import yaml

ROOT = os.path.join(os.environ["TEST_SRCDIR"], "twinserve")
K8S = os.path.join(ROOT, "deploy", "k8s")
TWINSERVE = os.path.join(ROOT, "server", "twinserve")
sys.path.insert(0, os.path.join(ROOT, "proto"))
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402


def yaml_files():
    for d, _, files in os.walk(K8S):
        for f in sorted(files):
            if f.endswith(".yaml"):
                yield os.path.join(d, f)


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def base_objects():
    out = {}
    kust = docs(os.path.join(K8S, "base", "kustomization.yaml"))[0]
    for r in kust["resources"]:
        for d in docs(os.path.join(K8S, "base", r)):
            out[(d["kind"], d["metadata"]["name"])] = d
    return out


def flags_in(text):
    return re.findall(r"(?m)^\s*(--[a-z_0-9]+)", text)


class ManifestsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        help_text = subprocess.run([TWINSERVE, "--help"], capture_output=True,
                                   text=True).stdout
        cls.known = set(re.findall(r"(?m)^    (--[a-z_0-9]+)", help_text))
        assert "--cluster_etcd" in cls.known, help_text[:2000]
        cls.objects = base_objects()

    def test_every_file_parses_and_every_reference_exists(self):
        n = 0
        for path in yaml_files():
            ds = docs(path)
            self.assertTrue(ds, path)
            n += len(ds)
            for d in ds:
                if d.get("kind") == "Kustomization":
                    here = os.path.dirname(path)
                    refs = list(d.get("resources", []))
                    refs += [p["path"] for p in d.get("patches", [])]
                    for r in refs:
                        self.assertTrue(
                            os.path.exists(os.path.join(here, r)),
                            "%s names %s, which does not exist" % (path, r))
                else:
                    self.assertIn("apiVersion", d, path)
                    self.assertIn("name", d.get("metadata", {}), path)
        self.assertGreater(n, 20)

    def test_base_has_what_a_fleet_needs(self):
        kinds = {k for k, _ in self.objects}
        for kind in ["Namespace", "ConfigMap", "Deployment", "Service",
                     "PersistentVolumeClaim", "PodDisruptionBudget",
                     "HorizontalPodAutoscaler", "ServiceMonitor",
                     "StatefulSet"]:
            self.assertIn(kind, kinds)
        pvc = self.objects[("PersistentVolumeClaim", "twinserve-blobs")]
        self.assertEqual(pvc["spec"]["accessModes"], ["ReadWriteMany"])
        dep = self.objects[("Deployment", "twinserve")]
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"]:
            self.assertEqual(c[probe]["grpc"]["port"], ports["health"], probe)
        self.assertIn("--health_address=0.0.0.0:%d" % ports["health"],
                      c["args"])
        self.assertIn("requests", c["resources"])
        self.assertIn("podAntiAffinity", pod["affinity"])
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        flags = self.objects[("ConfigMap", "twinserve-flags")]["data"]["flags"]
        self.assertIn("--cluster_blobs=/blobs", flags)
        self.assertIn("/blobs", mounts)
        pdb = self.objects[("PodDisruptionBudget", "twinserve")]
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"],
                         dep["spec"]["selector"]["matchLabels"])
        hpa = self.objects[("HorizontalPodAutoscaler", "twinserve")]
        metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
        rules = self.objects[("ConfigMap", "twinserve-adapter-rules")]
        adapter = yaml.safe_load(rules["data"]["config.yaml"])
        self.assertIn(metric, [r["name"]["as"] for r in adapter["rules"]])
        # The adapter's series is one twinserve exports.
        series = adapter["rules"][0]["seriesQuery"].split("{")[0].strip("'")
        self.assertTrue(series.startswith("twinserve_"), series)
        sts = self.objects[("StatefulSet", "etcd")]
        self.assertEqual(sts["spec"]["replicas"], 3)

    def test_every_flag_passed_exists(self):
        passed = []
        for path in yaml_files():
            for d in docs(path):
                if d.get("kind") == "ConfigMap" and "flags" in d.get(
                        "data", {}):
                    passed += [(path, f) for f in flags_in(d["data"]["flags"])]
                if d.get("kind") == "Deployment":
                    for c in d["spec"]["template"]["spec"].get(
                            "containers", []):
                        for a in c.get("args", []):
                            passed += [(path, f) for f in flags_in(a)]
        self.assertGreater(len(passed), 10)
        for path, f in passed:
            self.assertIn(f, self.known,
                          "%s passes %s, which twinserve --help does not "
                          "list" % (path, f))

    def test_overlays_render_with_kubectl_when_present(self):
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("kubectl is not installed; rendering not checked")
        # Runfiles are symlinks, which kustomize does not follow: a copy.
        tree = os.path.join(tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR")),
                            "k8s")
        shutil.copytree(K8S, tree)
        for overlay in ["dev", "prod"]:
            out = subprocess.run(
                [kubectl, "kustomize", os.path.join(tree, "overlays", overlay)],
                capture_output=True, text=True)
            self.assertEqual(out.returncode, 0, out.stderr)
            rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
            self.assertGreaterEqual(len(rendered), 12, overlay)

    def test_health_listener_answers_probes(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        store = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        proc = subprocess.Popen(
            [TWINSERVE, "--address=127.0.0.1:0", "--store=" + store,
             "--metrics=false", "--health_address=127.0.0.1:%d" % port],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            channel = grpc.insecure_channel("127.0.0.1:%d" % port)
            stub = health_pb2_grpc.HealthStub(channel)
            status = None
            for _ in range(200):
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(),
                                        timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
            self.assertEqual(status, health_pb2.HealthCheckResponse.SERVING)
            # Nothing but health listens there.
            with self.assertRaises(grpc.RpcError) as e:
                channel.unary_unary("/inference.GRPCInferenceService/"
                                    "ServerLive")(b"", timeout=2)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    unittest.main(verbosity=2)
