"""An independent client of the same protocol: Python grpcio with stubs
generated from proto/*.proto, against the real twinserve binary."""
import concurrent.futures
import os
import signal
import struct
import subprocess
import tempfile
import time
import unittest

import grpc

import grpc_service_pb2 as oip
import grpc_service_pb2_grpc as oip_grpc
import health_pb2
import health_pb2_grpc
import twinserve_pb2 as ts
import twinserve_pb2_grpc as ts_grpc

FIXTURES = "tests/fixtures"


class Server:
    """twinserve on an ephemeral port; `directory` reuses a stopped one's store."""

    def __init__(self, directory=None):
        tmp = os.environ.get("TEST_TMPDIR", tempfile.gettempdir())
        self.dir = directory or tempfile.mkdtemp(dir=tmp)
        port_file = os.path.join(self.dir, "port")
        if os.path.exists(port_file):
            os.remove(port_file)
        self.log = open(os.path.join(self.dir, "server.log"), "a")
        self.proc = subprocess.Popen(
            ["server/twinserve", "--address=127.0.0.1:0",
             "--store=" + os.path.join(self.dir, "store"),
             "--port_file=" + port_file, "--metrics_address=",
             "--shutdown_grace_ms=0",
             # Batching as configured, so requests wait in batch queues
             # (the adaptive default makes a tiny model wait for no one).
             "--batch_policy=fixed",
             # Off by default; on here for tritonclient's shm path.
             "--shared_memory"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("twinserve did not start")
            time.sleep(0.05)
        self.address = "127.0.0.1:" + open(port_file).read().strip()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


def register(stub, name, path, inputs, outputs, chunk=4096, batching=None,
             variant=""):
    def messages():
        header = ts.RegisterModelHeader(name=name, total_bytes=os.path.getsize(path),
                                        variant=variant)
        if batching is not None:
            header.batching.CopyFrom(batching)
        for n, d, s in inputs:
            header.inputs.add(name=n, datatype=d, shape=s)
        for n, d, s in outputs:
            header.outputs.add(name=n, datatype=d, shape=s)
        yield ts.RegisterModelRequest(header=header)
        with open(path, "rb") as f:
            while True:
                data = f.read(chunk)
                if not data:
                    break
                yield ts.RegisterModelRequest(chunk=data)
    return stub.RegisterModel(messages())


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.channel = grpc.insecure_channel(cls.server.address)
        grpc.channel_ready_future(cls.channel).result(timeout=30)
        cls.oip = oip_grpc.GRPCInferenceServiceStub(cls.channel)
        cls.mgmt = ts_grpc.ModelServiceStub(cls.channel)
        deadline = time.time() + 30
        while not cls.oip.ServerReady(oip.ServerReadyRequest()).ready:
            assert time.time() < deadline
            time.sleep(0.05)
        register(cls.mgmt, "addsub", os.path.join(FIXTURES, "add_sub.pt"),
                 [("a", "FP32", [-1, 4]), ("b", "FP32", [-1, 4])],
                 [("sum", "FP32", [-1, 4]), ("diff", "FP32", [-1, 4])])

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.stop()

    def test_health_and_server_metadata(self):
        health = health_pb2_grpc.HealthStub(self.channel)
        resp = health.Check(health_pb2.HealthCheckRequest(service=""))
        self.assertEqual(resp.status, health_pb2.HealthCheckResponse.SERVING)
        self.assertTrue(self.oip.ServerLive(oip.ServerLiveRequest()).live)
        md = self.oip.ServerMetadata(oip.ServerMetadataRequest())
        self.assertEqual(md.name, "twinserve")

    def test_model_metadata(self):
        md = self.oip.ModelMetadata(oip.ModelMetadataRequest(name="addsub"))
        self.assertEqual([i.name for i in md.inputs], ["a", "b"])
        self.assertEqual(list(md.inputs[0].shape), [-1, 4])
        self.assertEqual(md.outputs[1].datatype, "FP32")
        self.assertIn("fp32", md.versions)

    def test_dynamic_batching_as_tritonclient_sees_it(self):
        register(self.mgmt, "batched", os.path.join(FIXTURES, "add_sub.pt"),
                 [("a", "FP32", [-1, 4]), ("b", "FP32", [-1, 4])],
                 [("sum", "FP32", [-1, 4]), ("diff", "FP32", [-1, 4])],
                 batching=ts.BatchingConfig(max_batch_size=8,
                                            max_queue_delay_microseconds=2000))
        # Triton's convention: max_batch_size > 0, dims without the batch dim.
        cfg = self.oip.ModelConfig(oip.ModelConfigRequest(name="batched")).config
        self.assertEqual(cfg.max_batch_size, 8)
        self.assertEqual(list(cfg.input[0].dims), [4])
        self.assertEqual(cfg.dynamic_batching.max_queue_delay_microseconds, 2000)
        md = self.oip.ModelMetadata(oip.ModelMetadataRequest(name="batched"))
        self.assertEqual(md.properties["dynamic_batching"], "true")
        self.assertEqual(md.properties["max_batch_size"], "8")
        self.assertEqual(list(md.inputs[0].shape), [-1, 4])

        def one(i):
            rows = 1 + i % 3
            a = [float(i + k) for k in range(rows * 4)]
            b = [0.5] * (rows * 4)
            req = oip.ModelInferRequest(model_name="batched")
            for name, values in (("a", a), ("b", b)):
                t = req.inputs.add(name=name, datatype="FP32", shape=[rows, 4])
                t.contents.fp32_contents.extend(values)
            resp = self.oip.ModelInfer(req)
            got = struct.unpack("<%df" % (rows * 4), resp.raw_output_contents[0])
            return got == tuple(x + 0.5 for x in a)

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            self.assertTrue(all(pool.map(one, range(64))))
        stats = self.oip.ModelStatistics(
            oip.ModelStatisticsRequest(name="batched")).model_stats[0]
        self.assertEqual(stats.inference_stats.success.count, 64)
        self.assertLess(stats.execution_count, 64)

        info = self.mgmt.SetBatching(ts.SetBatchingRequest(
            model="batched", config=ts.BatchingConfig(max_batch_size=0)))
        self.assertEqual(info.batching.max_batch_size, 0)
        cfg = self.oip.ModelConfig(oip.ModelConfigRequest(name="batched")).config
        self.assertEqual(cfg.max_batch_size, 0)
        self.assertEqual(list(cfg.input[0].dims), [-1, 4])

    def test_infer_raw_and_typed(self):
        req = oip.ModelInferRequest(model_name="addsub", id="py-1")
        for name in ("a", "b"):
            req.inputs.add(name=name, datatype="FP32", shape=[1, 4])
        req.raw_input_contents.append(struct.pack("<4f", 1, 2, 3, 4))
        req.raw_input_contents.append(struct.pack("<4f", 1, 1, 1, 1))
        resp = self.oip.ModelInfer(req)
        self.assertEqual(resp.id, "py-1")
        self.assertEqual(resp.model_version, "fp32")
        self.assertEqual(resp.parameters["twinserve_variant"].string_param, "fp32")
        self.assertEqual([o.name for o in resp.outputs], ["sum", "diff"])
        self.assertEqual(struct.unpack("<4f", resp.raw_output_contents[0]), (2, 3, 4, 5))

        typed = oip.ModelInferRequest(model_name="addsub")
        for name in ("a", "b"):
            t = typed.inputs.add(name=name, datatype="FP32", shape=[1, 4])
            t.contents.fp32_contents.extend([0.5, 1.5, 2.5, 3.5])
        typed.outputs.add(name="sum")
        resp = self.oip.ModelInfer(typed)
        self.assertEqual(struct.unpack("<4f", resp.raw_output_contents[0]), (1, 3, 5, 7))

    def test_system_shared_memory_as_tritonclient_uses_it(self):
        from multiprocessing import shared_memory
        # Keys must start with the server's --shared_memory_key_prefix.
        inp = shared_memory.SharedMemory(
            name="twinserve_py_in_%d" % os.getpid(), create=True, size=64)
        out = shared_memory.SharedMemory(
            name="twinserve_py_out_%d" % os.getpid(), create=True, size=64)
        try:
            inp.buf[:32] = struct.pack("<8f", 1, 2, 3, 4, 10, 10, 10, 10)
            self.oip.SystemSharedMemoryRegister(oip.SystemSharedMemoryRegisterRequest(
                name="in", key="/" + inp.name, offset=0, byte_size=32))
            self.oip.SystemSharedMemoryRegister(oip.SystemSharedMemoryRegisterRequest(
                name="out", key="/" + out.name, offset=16, byte_size=32))
            regions = self.oip.SystemSharedMemoryStatus(
                oip.SystemSharedMemoryStatusRequest()).regions
            self.assertEqual(sorted(regions), ["in", "out"])
            self.assertEqual((regions["out"].key, regions["out"].offset,
                              regions["out"].byte_size), ("/" + out.name, 16, 32))

            def shm_param(params, region, offset, size):
                params["shared_memory_region"].string_param = region
                params["shared_memory_offset"].int64_param = offset
                params["shared_memory_byte_size"].int64_param = size

            # Both inputs from "in"; "sum" written into "out", "diff" returned.
            req = oip.ModelInferRequest(model_name="addsub")
            for i, name in enumerate(("a", "b")):
                t = req.inputs.add(name=name, datatype="FP32", shape=[1, 4])
                shm_param(t.parameters, "in", 16 * i, 16)
            shm_param(req.outputs.add(name="sum").parameters, "out", 0, 16)
            req.outputs.add(name="diff")
            resp = self.oip.ModelInfer(req)
            self.assertEqual(struct.unpack("<4f", bytes(out.buf[16:32])), (11, 12, 13, 14))
            p = resp.outputs[0].parameters
            self.assertEqual(p["shared_memory_region"].string_param, "out")
            self.assertEqual(p["shared_memory_byte_size"].int64_param, 16)
            # One raw entry per output, empty for the one in shared memory,
            # so tritonclient's positional lookup of "diff" still works.
            self.assertEqual(resp.raw_output_contents[0], b"")
            self.assertEqual(struct.unpack("<4f", resp.raw_output_contents[1]),
                             (-9, -8, -7, -6))

            # Mixed: "a" in shared memory, "b" raw (raw entries go to the
            # inputs not in shared memory, in order).
            mixed = oip.ModelInferRequest(model_name="addsub")
            shm_param(mixed.inputs.add(name="a", datatype="FP32", shape=[1, 4]).parameters,
                      "in", 0, 16)
            mixed.inputs.add(name="b", datatype="FP32", shape=[1, 4])
            mixed.raw_input_contents.append(struct.pack("<4f", 1, 1, 1, 1))
            resp = self.oip.ModelInfer(mixed)
            self.assertEqual(struct.unpack("<4f", resp.raw_output_contents[0]), (2, 3, 4, 5))

            def refused(request, code, text):
                with self.assertRaises(grpc.RpcError) as e:
                    self.oip.ModelInfer(request)
                self.assertEqual(e.exception.code(), code)
                self.assertIn(text, e.exception.details())

            small = oip.ModelInferRequest()
            small.CopyFrom(req)
            shm_param(small.outputs[0].parameters, "out", 0, 8)
            refused(small, grpc.StatusCode.INVALID_ARGUMENT, "output 'sum' needs 16 bytes")
            past = oip.ModelInferRequest()
            past.CopyFrom(req)
            shm_param(past.inputs[1].parameters, "in", 24, 16)
            refused(past, grpc.StatusCode.INVALID_ARGUMENT, "outside shared memory region 'in'")
            with self.assertRaises(grpc.RpcError) as e:
                self.oip.SystemSharedMemoryRegister(oip.SystemSharedMemoryRegisterRequest(
                    name="in", key="/" + inp.name, offset=0, byte_size=8))
            self.assertEqual(e.exception.code(), grpc.StatusCode.ALREADY_EXISTS)
            with self.assertRaises(grpc.RpcError) as e:
                self.oip.SystemSharedMemoryRegister(oip.SystemSharedMemoryRegisterRequest(
                    name="x", key="/twinserve_no_such_object", offset=0, byte_size=8))
            self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)

            self.oip.SystemSharedMemoryUnregister(
                oip.SystemSharedMemoryUnregisterRequest(name="in"))
            refused(req, grpc.StatusCode.NOT_FOUND, "no shared memory region 'in'")
            self.oip.SystemSharedMemoryUnregister(oip.SystemSharedMemoryUnregisterRequest())
            self.assertEqual(len(self.oip.SystemSharedMemoryStatus(
                oip.SystemSharedMemoryStatusRequest()).regions), 0)
        finally:
            for m in (inp, out):
                m.close()
                m.unlink()

    def test_timeout_parameter_drops_waiting_requests(self):
        # Batches wait up to 3 s for company: a 200 ms timeout expires first.
        register(self.mgmt, "slow", os.path.join(FIXTURES, "add_sub.pt"),
                 [("a", "FP32", [-1, 4]), ("b", "FP32", [-1, 4])],
                 [("sum", "FP32", [-1, 4]), ("diff", "FP32", [-1, 4])],
                 batching=ts.BatchingConfig(max_batch_size=64,
                                            max_queue_delay_microseconds=3000000))

        def request(rid, timeout_us):
            req = oip.ModelInferRequest(model_name="slow", id=rid)
            for name in ("a", "b"):
                req.inputs.add(name=name, datatype="FP32", shape=[1, 4])
                req.raw_input_contents.append(struct.pack("<4f", 1, 2, 3, 4))
            if timeout_us is not None:
                req.parameters["timeout"].int64_param = timeout_us
            return req

        start = time.time()
        with self.assertRaises(grpc.RpcError) as e:
            self.oip.ModelInfer(request("u", 200000))
        self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertIn("not run", e.exception.details())
        self.assertLess(time.time() - start, 2.5)
        # In a stream each message has its own: the first expires, the
        # second (no timeout) waits out the batch delay and is answered.
        got = {r.infer_response.id: r for r in self.oip.ModelStreamInfer(
            iter([request("0", 200000), request("1", None)]))}
        self.assertIn("deadline", got["0"].error_message)
        self.assertEqual(got["1"].error_message, "")
        self.assertEqual(struct.unpack("<4f", got["1"].infer_response.raw_output_contents[0]),
                         (2, 4, 6, 8))
        bad = request("bad", -5)
        with self.assertRaises(grpc.RpcError) as e:
            self.oip.ModelInfer(bad)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("timeout", e.exception.details())

    def test_classification_extension(self):
        # tritonclient's InferRequestedOutput(name, class_count=2) sets this.
        req = oip.ModelInferRequest(model_name="addsub")
        for name in ("a", "b"):
            req.inputs.add(name=name, datatype="FP32", shape=[2, 4])
        req.raw_input_contents.append(struct.pack("<8f", 3, 9, 1, 7, 0, 0, 5, 0))
        req.raw_input_contents.append(struct.pack("<8f", *([1] * 8)))
        req.outputs.add(name="sum").parameters["classification"].int64_param = 2
        req.outputs.add(name="diff")
        resp = self.oip.ModelInfer(req)
        out = resp.outputs[0]
        self.assertEqual((out.datatype, list(out.shape)), ("BYTES", [2, 2]))

        def elements(raw):  # OIP BYTES: 4-byte little-endian length + bytes
            items, i = [], 0
            while i < len(raw):
                (n,) = struct.unpack_from("<I", raw, i)
                items.append(raw[i + 4:i + 4 + n].decode())
                i += 4 + n
            return items

        self.assertEqual(elements(resp.raw_output_contents[0]),
                         ["10.000000:1", "8.000000:3", "6.000000:2", "1.000000:0"])
        self.assertEqual(resp.outputs[1].datatype, "FP32")  # untouched
        self.assertEqual(struct.unpack("<8f", resp.raw_output_contents[1])[:2], (2, 8))
        req.outputs[0].parameters["classification"].int64_param = 5
        with self.assertRaises(grpc.RpcError) as e:
            self.oip.ModelInfer(req)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("has 4 classes", e.exception.details())
        req.outputs[0].parameters["classification"].int64_param = 0
        with self.assertRaises(grpc.RpcError) as e:
            self.oip.ModelInfer(req)
        self.assertIn("classification must be a positive integer", e.exception.details())

    def test_errors_carry_grpc_codes(self):
        with self.assertRaises(grpc.RpcError) as e:
            self.oip.ModelInfer(oip.ModelInferRequest(model_name="ghost"))
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        req = oip.ModelInferRequest(model_name="addsub")
        req.inputs.add(name="a", datatype="FP32", shape=[1, 3])
        req.inputs.add(name="b", datatype="FP32", shape=[1, 4])
        req.raw_input_contents.append(b"\0" * 12)
        req.raw_input_contents.append(b"\0" * 16)
        with self.assertRaises(grpc.RpcError) as e:
            self.oip.ModelInfer(req)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("input 'a'", e.exception.details())
        with self.assertRaises(grpc.RpcError) as e:
            register(self.mgmt, "../evil", os.path.join(FIXTURES, "add_sub.pt"),
                     [("a", "FP32", [4])], [("y", "FP32", [4])])
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_stream_infer(self):
        def requests():
            for i in range(3):
                req = oip.ModelInferRequest(model_name="addsub", id=str(i))
                for name in ("a", "b"):
                    req.inputs.add(name=name, datatype="FP32", shape=[1, 4])
                    req.raw_input_contents.append(struct.pack("<4f", i, i, i, i))
                yield req
        got = {r.infer_response.id: r for r in self.oip.ModelStreamInfer(requests())}
        self.assertEqual(sorted(got), ["0", "1", "2"])
        self.assertEqual(struct.unpack("<4f", got["2"].infer_response.raw_output_contents[0]),
                         (4, 4, 4, 4))

    def test_management_list_and_statistics(self):
        models = self.mgmt.ListModels(ts.ListModelsRequest()).models
        self.assertIn("addsub", [m.name for m in models])
        info = self.mgmt.GetModel(ts.GetModelRequest(name="addsub"))
        self.assertEqual(info.state, ts.READY)
        self.assertEqual(info.variants[0].name, "fp32")
        stats = self.oip.ModelStatistics(oip.ModelStatisticsRequest(name="addsub"))
        self.assertEqual(stats.model_stats[0].version, "fp32")


if __name__ == "__main__":
    unittest.main(verbosity=2)
