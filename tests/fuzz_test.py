"""Random and malformed calls against the real twinserve binary: every
answer is a clear gRPC status (never UNKNOWN, INTERNAL or a dropped
connection), the server stays up, and after kill -9 what it acknowledged
(traffic policy, batching) is what it serves. Seeds are fixed: a failure
replays."""
import os
import random
import sys
import time
import unittest
from multiprocessing import shared_memory

import grpc

import grpc_service_pb2 as oip
import grpc_service_pb2_grpc as oip_grpc
import twinserve_pb2 as ts
import twinserve_pb2_grpc as ts_grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_client_test import FIXTURES, Server, register  # noqa: E402

CLEAR = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS",
         "FAILED_PRECONDITION", "UNIMPLEMENTED", "RESOURCE_EXHAUSTED",
         "PERMISSION_DENIED", "OUT_OF_RANGE", "ABORTED"}
VALUES = [0, -1, 1, 0.5, 2, 100, 1e-9, 1e308, float("nan"), float("inf")]


def code_of(call):
    try:
        return "OK", call()
    except grpc.RpcError as e:
        return e.code().name, e.details()


class FuzzTest(unittest.TestCase):
    def setUp(self):
        self.server = Server()
        self.connect()
        register(self.mgmt, "lin", os.path.join(FIXTURES, "linear.pt"),
                 [("x", "FP32", [-1, 784])], [("y", "FP32", [-1, 10])])
        register(self.mgmt, "lin", os.path.join(FIXTURES, "linear.pt"),
                 [("x", "FP32", [-1, 784])], [("y", "FP32", [-1, 10])],
                 variant="v2")

    def tearDown(self):
        self.channel.close()
        if self.server.proc.poll() is None:
            self.server.stop()

    def connect(self):
        self.channel = grpc.insecure_channel(self.server.address)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.oip = oip_grpc.GRPCInferenceServiceStub(self.channel)
        self.mgmt = ts_grpc.ModelServiceStub(self.channel)

    def check(self, seen, unclear):
        self.assertEqual(unclear, [], "answers without a clear status")
        self.assertIsNone(self.server.proc.poll(), "the server died")
        self.assertGreater(seen["OK"], 0, seen)

    def test_infer_requests(self):
        rng = random.Random(7)
        shm = shared_memory.SharedMemory(
            name="twinserve_fuzz_%d" % os.getpid(), create=True, size=1 << 16)
        seen, unclear = {}, []
        try:
            for i in range(800):
                op = rng.randrange(12)
                if op == 0:
                    call = lambda: self.oip.SystemSharedMemoryRegister(
                        oip.SystemSharedMemoryRegisterRequest(
                            name=rng.choice(["a", "b", ""]),
                            key=rng.choice(["/" + shm.name, "/twinserve_no_such",
                                            "/outside_prefix", "/../etc",
                                            ""]),
                            offset=rng.choice([0, 64, 1 << 16, 1 << 62]),
                            byte_size=rng.choice([0, 3136, 1 << 15, 1 << 63])))
                elif op == 1:
                    call = lambda: self.oip.SystemSharedMemoryUnregister(
                        oip.SystemSharedMemoryUnregisterRequest(
                            name=rng.choice(["a", "b", ""])))
                else:
                    req = oip.ModelInferRequest(
                        model_name=rng.choice(["lin", "lin", "ghost", ""]),
                        model_version=rng.choice(["", "", "fp32", "int8"]))
                    rows = rng.choice([1, 1, 2, 0, 3])
                    t = req.inputs.add(
                        name=rng.choice(["x", "x", "x", "y"]),
                        datatype=rng.choice(["FP32"] * 5 + ["FP64", "BYTES", "Q"]),
                        shape=rng.choice([[rows, 784], [rows, 784], [784],
                                          [rows, 783], [-1, 784], [1 << 40, 784]]))
                    size = rows * 784 * 4
                    kind = rng.random()
                    if kind < 0.25:
                        p = t.parameters
                        p["shared_memory_region"].string_param = rng.choice(["a", "b"])
                        p["shared_memory_byte_size"].int64_param = rng.choice(
                            [size, size, 8, -1])
                        p["shared_memory_offset"].int64_param = rng.choice(
                            [0, 4, 1 << 15, -2])
                    elif kind < 0.7:
                        req.raw_input_contents.append(
                            rng.randbytes(rng.choice([size, size, size + 4, 3])))
                    else:
                        t.contents.fp32_contents.extend(
                            [rng.random()] * rng.choice([rows * 784, 10]))
                    if rng.random() < 0.2:
                        req.raw_input_contents.append(b"\0" * 16)
                    if rng.random() < 0.3:
                        o = req.outputs.add(name=rng.choice(["y", "nope"]))
                        if rng.random() < 0.5:
                            o.parameters["shared_memory_region"].string_param = "a"
                            o.parameters["shared_memory_byte_size"].int64_param = \
                                rng.choice([40, 4])
                    if rng.random() < 0.1:
                        req.parameters["routing_key"].bool_param = True
                    call = lambda: self.oip.ModelInfer(req, timeout=20)
                code, detail = code_of(call)
                seen[code] = seen.get(code, 0) + 1
                if code not in CLEAR:
                    unclear.append((i, code, str(detail)[:200]))
        finally:
            shm.close()
            shm.unlink()
        print("infer:", sorted(seen.items()))
        self.check(seen, unclear)

    def test_management_then_kill9_keeps_what_was_acknowledged(self):
        rng = random.Random(11)
        seen, unclear = {}, []
        policy = batching = None  # the last acknowledged
        history = []  # every acknowledged policy, in order
        for i in range(600):
            op = rng.randrange(5)
            model = rng.choice(["lin", "lin", "ghost", ""])
            if op == 0 and rng.random() < 0.5:
                # A valid policy with one number changed: reaches the checks
                # a random policy rarely passes the earlier ones to reach.
                p = rng.choice([
                    ts.TrafficPolicy(kind="rollout", candidate="v2", steps=[10, 100]),
                    ts.TrafficPolicy(kind="shadow", candidate="v2"),
                    ts.TrafficPolicy(kind="weighted", weights={"fp32": 1, "v2": 1})])
                field = rng.choice(["min_seconds", "compare_fraction", "max_disagreement",
                                    "min_cosine", "max_error_rate", "max_p99_ratio",
                                    "shadow_fraction", "min_requests", "min_samples",
                                    "weight"])
                if field == "weight":
                    p.weights["v2"] = rng.choice(VALUES)
                elif field in ("min_requests", "min_samples"):
                    setattr(p, field, rng.choice([-1, 0, 5]))
                else:
                    setattr(p, field, rng.choice(VALUES))
                req = ts.SetTrafficPolicyRequest(model=model, policy=p)
                code, out = code_of(lambda: self.mgmt.SetTrafficPolicy(req))
            elif op == 0:
                p = ts.TrafficPolicy(kind=rng.choice(
                    ["pinned", "weighted", "shadow", "rollout", "", "canary"]))
                p.baseline = rng.choice(["fp32", "", "int8"])
                p.candidate = rng.choice(["fp32", "v2", "int8", ""])
                for _ in range(rng.randrange(3)):
                    p.weights[rng.choice(["fp32", "v2", "../x"])] = rng.choice(VALUES)
                if rng.random() < 0.5:
                    p.shadow_fraction = rng.choice(VALUES)
                p.steps.extend(rng.choice(VALUES) for _ in range(rng.randrange(3)))
                for f in ("min_seconds", "compare_fraction", "max_disagreement",
                          "min_cosine", "max_error_rate", "max_p99_ratio"):
                    if rng.random() < 0.3:
                        setattr(p, f, rng.choice(VALUES))
                req = ts.SetTrafficPolicyRequest(model=model, policy=p)
                code, out = code_of(lambda: self.mgmt.SetTrafficPolicy(req))
            elif op == 1:
                c = ts.BatchingConfig(
                    max_batch_size=rng.choice([-1, 0, 8, 1 << 30]),
                    max_queue_delay_microseconds=rng.choice([0, 100, 1 << 63]),
                    queue_capacity=rng.choice([-1, 0, 16]))
                c.preferred_batch_sizes.extend(
                    rng.choice([-1, 4, 9]) for _ in range(rng.randrange(2)))
                req = ts.SetBatchingRequest(model=model, config=c,
                                            variant=rng.choice(["", "fp32", "x"]))
                code, out = code_of(lambda: self.mgmt.SetBatching(req))
            elif op == 2:
                code, out = code_of(lambda: self.mgmt.Promote(ts.PromoteRequest(
                    model=model, variant=rng.choice(["fp32", "v2", "int8", ""]))))
            elif op == 3:
                code, out = code_of(lambda: self.mgmt.Rollback(
                    ts.RollbackRequest(model=model)))
            else:
                q = ts.QuantizeRequest(model=model, mode=rng.choice(
                    ["", "static", "dynamic", "fp16", "int4"]))
                if rng.random() < 0.5:
                    q.percentile = rng.choice(VALUES)
                if rng.random() < 0.5:
                    q.time_limit_seconds = rng.choice(VALUES)
                code, out = code_of(lambda: self.mgmt.Quantize(q))
            seen[code] = seen.get(code, 0) + 1
            if code not in CLEAR:
                unclear.append((i, code, str(out)[:200]))
            if code == "OK" and model == "lin":
                if op in (0, 2, 3):
                    policy = out
                    history.append(out)
                elif op == 1:
                    batching = out.batching
        print("management:", sorted(seen.items()))
        self.check(seen, unclear)
        self.assertIsNotNone(policy)

        # Every acknowledged change is in the manifest: kill -9, restart.
        self.channel.close()
        self.server.kill9()
        self.server = Server(self.server.dir)
        self.connect()
        deadline = time.time() + 30
        while not self.oip.ModelReady(oip.ModelReadyRequest(name="lin")).ready:
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        got = self.mgmt.GetTrafficPolicy(ts.GetTrafficPolicyRequest(model="lin"))
        self.assertEqual((got.version, got.kind, got.baseline),
                         (policy.version, policy.kind, policy.baseline))
        # The history too: the manifest holds the last 200 changes.
        changes = self.mgmt.PolicyHistory(
            ts.PolicyHistoryRequest(model="lin")).changes
        self.assertEqual([c.policy for c in changes][-len(history):],
                         history[-200:][-len(changes):])
        if batching is not None:
            info = self.mgmt.GetModel(ts.GetModelRequest(name="lin"))
            self.assertEqual(info.batching, batching)
        req = oip.ModelInferRequest(model_name="lin")
        req.inputs.add(name="x", datatype="FP32", shape=[1, 784])
        req.raw_input_contents.append(b"\0" * 3136)
        self.assertEqual(len(self.oip.ModelInfer(req).raw_output_contents[0]), 40)


if __name__ == "__main__":
    unittest.main(verbosity=2)
