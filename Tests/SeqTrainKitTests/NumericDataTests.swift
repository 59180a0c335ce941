import Foundation
import XCTest
import SeqTrainKit

/// The numeric readers: .npy of every supported version and dtype (files written here byte by byte,
/// independently of seqtrain's writer), malformed files, CSV/TSV layouts and their errors, trailing
/// NaN lengths, and the spectral features.
final class NumericDataTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try temporaryDirectory()
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// An .npy file as NumPy writes it: magic, version, header length, the dict padded to 64 bytes.
    func npy(version: UInt8 = 1, header dict: String, data: Data) -> Data {
        let prefix = version == 1 ? 10 : 12
        var header = dict
        header += String(repeating: " ", count: (64 - (prefix + header.utf8.count + 1) % 64) % 64) + "\n"
        var out = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version, 0])
        let n = header.utf8.count
        out.append(contentsOf: version == 1 ? [UInt8(n & 0xff), UInt8(n >> 8)] : [UInt8(n & 0xff), UInt8(n >> 8 & 0xff), 0, 0])
        out.append(Data(header.utf8))
        out.append(data)
        return out
    }

    func write(_ data: Data, _ name: String) throws -> String {
        let path = "\(dir)/\(name)"
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    func bytes<T>(_ values: [T]) -> Data { values.withUnsafeBytes { Data($0) } }

    func assertError(_ body: () throws -> Void, contains expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(expected), "\(error)\n does not contain: \(expected)", file: file, line: line)
        }
    }

    /// Runs a Python script with NumPy. The first python3 on PATH may lack NumPy where launch/test
    /// installed Debian's python3-numpy, which /usr/bin/python3 has.
    static func numpy(_ arguments: [String]) throws {
        let probe = try MultiRankTests.execute(["/usr/bin/env", "python3", "-c", "import numpy"], timeout: 60)
        let python = probe.status == 0 ? "python3" : "/usr/bin/python3"
        let run = try MultiRankTests.execute(["/usr/bin/env", python] + arguments, timeout: 60)
        XCTAssertEqual(run.status, 0, "\(python) with numpy (launch/test installs python3-numpy): \(run.errors)")
    }

    /// Archives as np.savez and np.savez_compressed write them: the first array is the inputs, the
    /// other the labels, unless data.input_array and data.label_array say; errors name the arrays.
    func testNumpyArchivesReadAsNumPyWritesThem() throws {
        let script = """
            import sys, numpy as np
            x = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
            y = np.array([0, 2, 1, 2])
            np.savez(sys.argv[1] + "/plain.npz", x=x, y=y)
            np.savez_compressed(sys.argv[1] + "/packed.npz", labels=y, inputs=x.astype(np.float64))
            """
        try script.write(toFile: "\(dir)/make.py", atomically: true, encoding: .utf8)
        try Self.numpy(["\(dir)/make.py", dir])
        var reader = NumericReader()
        let plain = try reader.read(inputs: ["\(dir)/plain.npz"], labels: [])
        XCTAssertEqual([plain.count, plain.steps, plain.features], [4, 3, 2])
        XCTAssertEqual(plain.inputs, (0..<24).map(Float.init))
        guard case .names(let ids)? = plain.labels else { return XCTFail("labels from the second array") }
        XCTAssertEqual(ids, ["0", "2", "1", "2"])
        XCTAssertTrue(plain.source.hasSuffix("plain.npz[x, y]"), "the arrays taken are named: \(plain.source)")
        reader.inputArray = "inputs"
        reader.labelArray = "labels"
        let packed = try reader.read(inputs: ["\(dir)/packed.npz"], labels: [])
        XCTAssertEqual(packed.inputs, plain.inputs, "deflated members, float64")
        reader.inputArray = "images"
        XCTAssertThrowsError(try reader.read(inputs: ["\(dir)/packed.npz"], labels: [])) { error in
            XCTAssertTrue("\(error)".contains("data.input_array = \"images\": \(dir)/packed.npz has no such array; "
                + "it holds labels, inputs"), "\(error)")
        }
        try "not a zip".write(toFile: "\(dir)/bad.npz", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try NumericReader().read(inputs: ["\(dir)/bad.npz"], labels: [])) { error in
            XCTAssertTrue("\(error)".contains("bad.npz: not a NumPy archive"), "\(error)")
        }
        // Damaged archives: every truncation and a byte changed anywhere are read or refused.
        reader.inputArray = "inputs"
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(dir)/packed.npz")))
        let random = CounterRandom(seed: 5, purpose: .synthetic)
        for k in 0..<400 {
            var damaged = bytes
            if k % 2 == 0 {
                damaged = Array(bytes.prefix(k * bytes.count / 400))
            } else {
                damaged[random.integer(below: bytes.count, stream: UInt64(k), index: 0)] =
                    UInt8(random.integer(below: 256, stream: UInt64(k), index: 1))
            }
            try Data(damaged).write(to: URL(fileURLWithPath: "\(dir)/damaged.npz"))
            _ = try? reader.read(inputs: ["\(dir)/damaged.npz"], labels: [])
        }
    }

    /// Every feature block against NumPy (np.fft.rfft, np.std, the adaptive-pooling windows written
    /// out), on two channels of variable length, one sample shorter than the segment count.
    func testFeatureBlocksMatchNumPy() throws {
        let (N, T, F) = (5, 37, 2)
        let lengths = [37, 20, 3, 11, 36]
        let random = CounterRandom(seed: 4, purpose: .synthetic)
        var x = [Float](repeating: .nan, count: N * T * F)     // (N, T, F), trailing NaN ends a sample
        for s in 0..<N {
            for t in 0..<lengths[s] {
                for f in 0..<F {
                    let wave = sin(Float(t) * 0.4 * Float(f + 1) + Float(s))
                    x[(s * T + t) * F + f] = wave + random.uniform(stream: UInt64(s), index: UInt64(t * F + f))
                }
            }
        }
        try NumpyArray(floats: x, shape: [N, T, F]).write(to: "\(dir)/x.npy")
        let (bins, segments) = (5, 8)
        let script = """
            import math, sys, numpy as np
            x = np.load(sys.argv[1]).astype(np.float64)
            B, S = \(bins), \(segments)
            rows = []
            for sample in x:
                L = int((~np.isnan(sample).all(axis=1)).sum())
                v = sample[:L]                                          # (L, F)
                raw = np.nan_to_num(sample).reshape(-1)
                spectrum = np.zeros((B, v.shape[1]))
                full = np.abs(np.fft.rfft(v, axis=0, norm="forward"))[:B]
                spectrum[:len(full)] = full
                rfft = np.log1p(spectrum.T).reshape(-1)
                windows = [(j * L // S, math.ceil((j + 1) * L / S)) for j in range(S)]
                down = np.array([[v[a:b, f].mean() for a, b in windows] for f in range(v.shape[1])]).reshape(-1)
                stats = np.stack([v.mean(0), v.std(0), v.min(0), v.max(0), v[0], v[-1]], axis=1).reshape(-1)
                rows.append(np.concatenate([raw, rfft, down, stats]))
            np.save(sys.argv[2], np.array(rows, dtype=np.float32))
            """
        try script.write(toFile: "\(dir)/blocks.py", atomically: true, encoding: .utf8)
        try Self.numpy(["\(dir)/blocks.py", "\(dir)/x.npy", "\(dir)/expected.npy"])
        let expected = try NumpyArray(contentsOf: "\(dir)/expected.npy")
        let data = try NumericReader().read(inputs: ["\(dir)/x.npy"], labels: [])
        XCTAssertEqual(data.lengths, lengths)
        let blocks = try XCTUnwrap(FeatureBlocks(names: ["raw", "rfft", "downsample", "stats"], rfftBins: bins,
                                                 segments: segments))
        XCTAssertEqual(blocks.width(steps: T, channels: F), T * F + (bins + segments + 6) * F)
        let out = blocks.apply(data)
        XCTAssertEqual(expected.shape, [N, out.features])
        assertClose(out.inputs, expected.floats(), "raw + rfft + downsample + stats", absolute: 1e-5, relative: 1e-5)
        // One block alone is that block's columns of the concatenation.
        let stats = try XCTUnwrap(FeatureBlocks(names: ["stats"], rfftBins: bins, segments: segments)).apply(data)
        let offset = T * F + (bins + segments) * F
        let columns = (0..<N).flatMap { out.inputs[($0 * out.features + offset)..<(($0 + 1) * out.features)] }
        XCTAssertEqual(stats.inputs, columns)
        XCTAssertNil(FeatureBlocks(names: ["raw", "raw"], rfftBins: 1, segments: 1), "a block listed twice")
        XCTAssertNil(FeatureBlocks(names: ["wavelet"], rfftBins: 1, segments: 1))
        XCTAssertNil(FeatureBlocks(names: ["raw"], rfftBins: 1, segments: 1)?.width(steps: Int.max / 2, channels: 4))
    }

    /// JSON records as the curve user has them: nested fields, variable lengths, a list of classes
    /// per record (multi-label by name), and JSON Lines with one channel pair per step.
    func testJSONRecordsReadWithFieldsLengthsAndLabels() throws {
        let json = """
            [{"data": {"y": [1, 2, 3, 4]}, "classifier": [1, 3]},
             {"data": {"y": [5.5, 6]}, "classifier": [3]},
             {"data": {"y": [7, 8, 9]}, "classifier": []}]
            """
        try json.write(toFile: "\(dir)/curves.json", atomically: true, encoding: .utf8)
        var reader = NumericReader()
        reader.inputField = "data.y"
        reader.labelField = "classifier"
        let data = try reader.read(inputs: ["\(dir)/curves.json"], labels: [])
        XCTAssertEqual([data.count, data.steps, data.features], [3, 4, 1])
        XCTAssertEqual(data.lengths, [4, 2, 3])
        XCTAssertEqual(data.inputs, [1, 2, 3, 4, 5.5, 6, 0, 0, 7, 8, 9, 0])
        guard case .matrix(let m, let columns)? = data.labels else {
            return XCTFail("multi-label: \(String(describing: data.labels))")
        }
        XCTAssertEqual(columns, ["1", "3"], "the classes as named, 1-based ids need no conversion")
        XCTAssertEqual(m, [1, 1, 0, 1, 0, 0])

        let lines = """
            {"x": [[1, 10], [2, 20]], "y": "cat"}

            {"x": [[3, 30]], "y": 7}
            """
        try lines.write(toFile: "\(dir)/pairs.jsonl", atomically: true, encoding: .utf8)
        reader.inputField = "x"
        reader.labelField = "y"
        let pairs = try reader.read(inputs: ["\(dir)/pairs.jsonl"], labels: [])
        XCTAssertEqual([pairs.count, pairs.steps, pairs.features], [2, 2, 2])
        XCTAssertEqual(pairs.inputs, [1, 10, 2, 20, 3, 30, 0, 0])
        guard case .names(let names)? = pairs.labels else { return XCTFail("single-label") }
        XCTAssertEqual(names, ["cat", "7"])
        // A vector model needs one length, and says which features read any length.
        reader.layout = .vector
        XCTAssertThrowsError(try reader.read(inputs: ["\(dir)/pairs.jsonl"], labels: [])) { error in
            let expected = "have 1 to 2 steps; a vector model needs samples of one length"
            XCTAssertTrue("\(error)".contains(expected), "\(error)")
        }
    }

    func testJSONErrorsNameTheRecordAndTheField() throws {
        func refusal(_ text: String, name: String = "r.json", input: String = "x", label: String = "y") -> String {
            let path = "\(dir)/\(name)"
            try? text.write(toFile: path, atomically: true, encoding: .utf8)
            var reader = NumericReader()
            reader.inputField = input
            reader.labelField = label
            do {
                _ = try reader.read(inputs: [path], labels: [])
                return "read"
            } catch {
                return "\(error)".replacingOccurrences(of: dir + "/", with: "")
            }
        }
        XCTAssertEqual(refusal(#"[{"x": [1], "y": 0}, {"z": [1], "y": 0}]"#),
                       "r.json, record 1: no field x (data.input_field); its fields: y, z")
        XCTAssertEqual(refusal(#"[{"x": [1], "y": 0}, {"x": [1]}]"#),
                       "r.json, record 1: no field y (data.label_field); its fields: x")
        XCTAssertEqual(refusal(#"[{"x": [1, "a"], "y": 0}]"#),
                       "r.json, record 0: x[1] is a string; a step is a number, or a list of numbers (one per channel)")
        XCTAssertEqual(refusal(#"[{"x": [[1, 2], [3]], "y": 0}]"#),
                       "r.json, record 0: x[1] has 1 channel(s), step 0 has 2; every step needs the same number")
        XCTAssertEqual(refusal(#"[{"x": [1], "y": 0.5}]"#), "r.json, record 0: y is a number; a class is a name or an "
                       + "integer id, and several classes (multi-label) are a list of them")
        XCTAssertEqual(refusal(#"[{"x": [1], "y": true}]"#).prefix(31), "r.json, record 0: y is true/fal")
        XCTAssertEqual(refusal(#"{"x": [1]}"#), "r.json: the JSON is not a list of records; give [{...}, {...}] or "
                       + "JSON Lines (.jsonl, a record per line)")
        XCTAssertEqual(refusal(#"[{"data": [1], "y": 0}]"#, input: ""), "r.json, record 0: the records are objects; "
                       + "name the field that holds a sample's numbers with data.input_field (a dotted path such as "
                       + "\"data.y\"); its fields: data, y")
        let truncated = refusal("{\"x\": [1], \"y\": 0}\n{\"x\": [1,\n", name: "r.jsonl")
        XCTAssertTrue(truncated.hasPrefix("r.jsonl:2: not valid JSON"), truncated)
        XCTAssertTrue(refusal(#"[{"x": [1], "y": 0}]"#, name: "r.csv").contains(
            "r.csv looks like JSON (it starts with \"[\"); name it .json"))
        XCTAssertTrue(refusal("PAR1", name: "data.parquet").contains("data.parquet is Parquet, which seqtrain does not "
            + "read; it reads .npy, .npz, CSV/TSV and JSON records. Convert it in Python: pandas.read_parquet("))
        XCTAssertTrue(refusal("x", name: "d.pkl").contains("Convert it in Python: np.save(\"data.npy\""))
    }

    func testEveryVersionAndDtypeReads() throws {
        let expected: [Double] = [0, 1, 2, 3, 4, 5]
        let cases: [(String, Data)] = [
            ("<f4", bytes(expected.map { Float($0) })), ("<f8", bytes(expected)),
            ("|i1", bytes(expected.map { Int8($0) })), ("<i2", bytes(expected.map { Int16($0) })),
            ("<i4", bytes(expected.map { Int32($0) })), ("<i8", bytes(expected.map { Int64($0) })),
            ("|u1", bytes(expected.map { UInt8($0) })), ("<u2", bytes(expected.map { UInt16($0) })),
            ("<u4", bytes(expected.map { UInt32($0) })), ("<u8", bytes(expected.map { UInt64($0) })),
        ]
        for version: UInt8 in [1, 2, 3] {
            for (descr, data) in cases {
                let path = try write(npy(version: version, header: "{'descr': '\(descr)', 'fortran_order': False, 'shape': (2, 3), }", data: data),
                                     "a-\(version)-\(descr.dropFirst()).npy")
                let array = try NumpyArray(contentsOf: path)
                XCTAssertEqual(array.shape, [2, 3], "\(version) \(descr)")
                XCTAssertEqual(array.doubles(), expected, "\(version) \(descr)")
            }
        }
        let negative = try NumpyArray(npy(header: "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }", data: bytes([Int16(-3), Int16(7)])), source: "x")
        XCTAssertEqual(negative.doubles(), [-3, 7])
        let flags = try NumpyArray(npy(header: "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", data: Data([1, 0, 1])), source: "x")
        XCTAssertEqual(flags.floats(), [1, 0, 1])
        // seqtrain's own writer round-trips.
        try NumpyArray(floats: [1.5, -2, .nan], shape: [3]).write(to: "\(dir)/own.npy")
        let own = try NumpyArray(contentsOf: "\(dir)/own.npy").floats()
        XCTAssertEqual(Array(own.prefix(2)), [1.5, -2])
        XCTAssertTrue(own[2].isNaN)
    }

    func testMalformedFilesAreErrorsNamingTheProblem() throws {
        let good = npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", data: bytes([Float](repeating: 1, count: 4)))
        assertError({ _ = try NumpyArray(Data("hello world, not numpy".utf8), source: "bad.npy") }, contains: "bad.npy: not a NumPy .npy file")
        assertError({ _ = try NumpyArray(good.prefix(30), source: "short.npy") }, contains: "short.npy: truncated .npy header")
        assertError({ _ = try NumpyArray(good.dropLast(3), source: "cut.npy") },
                    contains: "cut.npy: truncated data: shape [2, 2] of <f4 needs 16 bytes, the file holds 13")
        assertError({ _ = try NumpyArray(npy(header: "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", data: bytes([Float](repeating: 1, count: 4))), source: "f.npy") },
                    contains: "f.npy: the array is in Fortran order; save it in C order")
        assertError({ _ = try NumpyArray(npy(header: "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", data: bytes([Float](repeating: 1, count: 4))), source: "be.npy") },
                    contains: "be.npy: the array is big-endian ('>f4')")
        assertError({ _ = try NumpyArray(npy(header: "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", data: Data(count: 16)), source: "o.npy") },
                    contains: "o.npy: object arrays (Python objects) cannot be read")
        assertError({ _ = try NumpyArray(npy(header: "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", data: Data(count: 8)), source: "c.npy") },
                    contains: "c.npy: dtype '<c8' is not supported")
        assertError({ _ = try NumpyArray(npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", data: Data()), source: "huge.npy") },
                    contains: "huge.npy: shape [4294967296, 4294967296] is too large")
        assertError({ _ = try NumpyArray(npy(header: "{'fortran_order': False, 'shape': (1,), }", data: Data(count: 4)), source: "nodescr.npy") },
                    contains: "nodescr.npy: malformed .npy header (no 'descr')")
        var future = good
        future[6] = 9
        assertError({ _ = try NumpyArray(future, source: "v9.npy") }, contains: "v9.npy: .npy format version 9.0 is not supported")
    }

    func read(_ inputs: [String], labels: [String] = [], columns: [String] = [], header: Bool = false,
              layout: SampleLayout = .sequence) throws -> LabelledData {
        var reader = NumericReader()
        reader.labelColumns = columns
        reader.header = header
        reader.layout = layout
        return try reader.read(inputs: inputs, labels: labels)
    }

    func testTheUCRArchiveLayoutReadsWithTwoKeys() throws {
        // UCR/UEA .tsv: label first, values after, no header; shorter series end in NaN.
        let text = "2\t0.5\t1.0\t1.5\t2.0\n1\t3.0\t2.0\tNaN\tNaN\n-1\t1\t1\t1\t1\n"
        try text.write(toFile: "\(dir)/Shapes_TRAIN.tsv", atomically: true, encoding: .utf8)
        let data = try read(["\(dir)/Shapes_TRAIN.tsv"], columns: ["0"])
        XCTAssertEqual(data.count, 3)
        XCTAssertEqual(data.steps, 4)
        XCTAssertEqual(data.features, 1)
        XCTAssertEqual(data.lengths, [4, 2, 4])
        XCTAssertEqual(Array(data.inputs[4..<8]), [3, 2, 0, 0], "trailing NaN steps become zeros past the length")
        XCTAssertEqual(data.labels, .names(["2", "1", "-1"]))
    }

    func testCSVWithHeaderStringLabelsAndSeveralLabelColumns() throws {
        try "a,b,kind,c\n1,2,cat,3\n4,\"5\",dog,6\n".write(toFile: "\(dir)/x.csv", atomically: true, encoding: .utf8)
        let data = try read(["\(dir)/x.csv"], columns: ["kind"], header: true, layout: .vector)
        XCTAssertEqual(data.inputs, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(data.labels, .names(["cat", "dog"]))
        try "x,y,l1,l2\n1,2,0,1\n3,4,1,1\n".write(toFile: "\(dir)/m.csv", atomically: true, encoding: .utf8)
        let multi = try read(["\(dir)/m.csv"], columns: ["l1", "l2"], header: true, layout: .vector)
        XCTAssertEqual(multi.labels, .matrix([0, 1, 1, 1], columns: ["l1", "l2"]))
    }

    func testCSVErrorsNameFileLineAndColumn() throws {
        try "1,2,3\n4,x,6\n".write(toFile: "\(dir)/nan.csv", atomically: true, encoding: .utf8)
        assertError({ _ = try self.read(["\(dir)/nan.csv"], columns: ["0"]) }, contains: "nan.csv:2: column 1: \"x\" is not a number")
        try "1,2,3\n4,5\n".write(toFile: "\(dir)/ragged.csv", atomically: true, encoding: .utf8)
        assertError({ _ = try self.read(["\(dir)/ragged.csv"], columns: ["0"]) }, contains: "ragged.csv:2: 2 cells where the first row has 3")
        assertError({ _ = try self.read(["\(dir)/nan.csv"], columns: ["7"]) }, contains: "data.label_columns: column 7 does not exist in \(dir)/nan.csv; its rows have 3 columns")
        try "a,b\n1,2\n".write(toFile: "\(dir)/h.csv", atomically: true, encoding: .utf8)
        assertError({ _ = try self.read(["\(dir)/h.csv"], columns: ["label"], header: true) }, contains: "data.label_columns: no column \"label\" in \(dir)/h.csv: the header has a, b")
        try "0,1,NaN,3\n".write(toFile: "\(dir)/hole.csv", atomically: true, encoding: .utf8)
        assertError({ _ = try self.read(["\(dir)/hole.csv"], columns: ["0"]) }, contains: "hole.csv: sample 0, step 1: NaN inside the sequence (step 2 has values again)")
        try "0,NaN,NaN\n".write(toFile: "\(dir)/empty.csv", atomically: true, encoding: .utf8)
        assertError({ _ = try self.read(["\(dir)/empty.csv"], columns: ["0"]) }, contains: "empty.csv: sample 0: empty sample")
        assertError({ _ = try self.read(["\(dir)/hole.csv"], columns: ["0"], layout: .vector) }, contains: "hole.csv: sample 0, column 1: missing value (NaN)")
        try "1,2\n3,4\n".write(toFile: "\(dir)/in.csv", atomically: true, encoding: .utf8)
        try "0\n1\n1\n".write(toFile: "\(dir)/three.csv", atomically: true, encoding: .utf8)
        assertError({ _ = try self.read(["\(dir)/in.csv"], labels: ["\(dir)/three.csv"]) }, contains: "data.labels: 3 labels for 2 samples")
        try "0,2\n1,1\n".write(toFile: "\(dir)/notbinary.csv", atomically: true, encoding: .utf8)
        assertError({ _ = try self.read(["\(dir)/in.csv"], labels: ["\(dir)/notbinary.csv"]) }, contains: "notbinary.csv:1: column 1: \"2\" is not 0 or 1")
        try "a,b\n1,2,x\n".write(toFile: "\(dir)/short-header.csv", atomically: true, encoding: .utf8)
        assertError({ _ = try self.read(["\(dir)/short-header.csv"], columns: ["a"], header: true) },
                    contains: "short-header.csv:2: column 2: \"x\" is not a number")
        try "\"open,1\n".write(toFile: "\(dir)/quote.csv", atomically: true, encoding: .utf8)
        assertError({ _ = try self.read(["\(dir)/quote.csv"], columns: ["0"]) }, contains: "quote.csv:1: a quoted cell is never closed")
    }

    func testNpyInputsAndLabelsOfEveryShape() throws {
        try NumpyArray(floats: (0..<12).map(Float.init), shape: [2, 3, 2]).write(to: "\(dir)/x3.npy")
        try NumpyArray(integers: [3, 7], shape: [2]).write(to: "\(dir)/y.npy")
        let sequences = try read(["\(dir)/x3.npy"], labels: ["\(dir)/y.npy"])
        XCTAssertEqual([sequences.count, sequences.steps, sequences.features], [2, 3, 2])
        XCTAssertEqual(sequences.labels, .names(["3", "7"]))
        let vectors = try read(["\(dir)/x3.npy"], labels: ["\(dir)/y.npy"], layout: .vector)
        XCTAssertEqual([vectors.count, vectors.steps, vectors.features], [2, 1, 6], "an MLP sees (N, T, F) flattened")
        try NumpyArray(floats: [0.5, 1], shape: [2]).write(to: "\(dir)/frac.npy")
        assertError({ _ = try self.read(["\(dir)/x3.npy"], labels: ["\(dir)/frac.npy"]) }, contains: "frac.npy, sample 0: 0.5 is not a class id")
        try NumpyArray(floats: [1, 2, 3], shape: [3]).write(to: "\(dir)/flat.npy")
        assertError({ _ = try self.read(["\(dir)/flat.npy"]) }, contains: "flat.npy has shape [3]; inputs are (N, T), (N, T, F) or (N, F)")
        var holes = (0..<12).map(Float.init)
        holes[3] = .nan
        try NumpyArray(floats: holes, shape: [2, 3, 2]).write(to: "\(dir)/holes.npy")
        assertError({ _ = try self.read(["\(dir)/holes.npy"]) }, contains: "holes.npy: sample 0, step 1: 1 of 2 features are NaN")
    }

    func testSpectralFeaturesAreTheLogMagnitudeOfTheDFT() throws {
        let x: [Float] = [1, 2, 0, -1, 3, 0.5, 0, 0]
        let data = LabelledData(inputs: x, count: 1, steps: 8, features: 1, lengths: [6], labels: nil, source: "x")
        let features = SpectralFeatures.logMagnitude(data, bins: 5)
        XCTAssertEqual(features.features, 5)
        for k in 0..<5 {
            var re = 0.0, im = 0.0
            for t in 0..<6 {
                re += Double(x[t]) * cos(2 * Double.pi * Double(k * t) / 6)
                im -= Double(x[t]) * sin(2 * Double.pi * Double(k * t) / 6)
            }
            let expected = k <= 3 ? Float(log1p((re * re + im * im).squareRoot() / 6)) : 0
            XCTAssertEqual(features.inputs[k], expected, accuracy: 1e-5, "bin \(k) over the 6 valid steps, divided by 6; past Nyquist zero")
        }
    }

    func testGeneratedCurvesAreSeededAndLabelled() {
        let a = SyntheticSets.curves(count: 20, length: 100, seed: 4), b = SyntheticSets.curves(count: 20, length: 100, seed: 4)
        XCTAssertEqual(a.inputs, b.inputs)
        XCTAssertEqual(a.labels, b.labels)
        XCTAssertNotEqual(a.inputs, SyntheticSets.curves(count: 20, length: 100, seed: 5).inputs)
        for i in 0..<20 {
            let row = Array(a.labels[(i * 7)..<(i * 7 + 7)])
            XCTAssertFalse(row[0] == 1 && row[1] == 1, "rising and falling exclude each other")
            XCTAssertFalse(row[2] == 1 && row[3] == 1, "convex and concave exclude each other")
        }
        let variable = SyntheticSets.curves(count: 20, length: 100, seed: 4, variableLength: true)
        XCTAssertTrue(variable.inputs.contains { $0.isNaN }, "variable-length curves end in NaN")
    }
}

/// Seeded mutations of valid files: every reader returns a value or throws, never traps (a trap
/// would end the test process).
final class NumericReaderFuzzTests: XCTestCase {
    func testMutatedNpyFilesAreReadOrRefused() throws {
        let valid = NumpyArray(floats: (0..<24).map(Float.init), shape: [2, 3, 4]).encoded()
        let random = CounterRandom(seed: 99, purpose: .synthetic)
        var refused = 0, read = 0
        for case_ in 0..<2000 {
            var bytes = [UInt8](valid)
            let draws = (0..<8).map { random.integer(below: 1 << 30, stream: UInt64(case_), index: UInt64($0)) }
            switch draws[0] % 4 {
            case 0: bytes[draws[1] % bytes.count] = UInt8(draws[2] % 256)                 // one byte anywhere
            case 1: bytes = Array(bytes.prefix(draws[1] % bytes.count))                     // truncated
            case 2:                                                                           // a header character
                let i = 10 + draws[1] % 60
                bytes[i] = Array("0123456789(), '<>|:fiubO?TrueFals-".utf8)[draws[2] % 34]
            default:                                                                          // header length
                bytes[8] = UInt8(draws[1] % 256); bytes[9] = UInt8(draws[2] % 256)
            }
            do {
                let array = try NumpyArray(Data(bytes), source: "case \(case_)")
                _ = array.floats()
                read += 1
            } catch {
                refused += 1
            }
        }
        XCTAssertGreaterThan(refused, 500)
        XCTAssertGreaterThan(read, 100, "mutations of the data bytes still read")
    }

    func testMutatedJSONRecordsAreReadOrRefused() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let valid = Array(#"[{"d": {"y": [1, 2.5, -3e2]}, "c": [1, 3]}, {"d": {"y": [4, 5, 6]}, "c": "a"}]"#
            .unicodeScalars)
        let alphabet = Array("[]{}\",:.-+eE0123456789 \n\\ntruefalsnul".unicodeScalars)
        let random = CounterRandom(seed: 11, purpose: .synthetic)
        var read = 0, refused = 0
        try String(String.UnicodeScalarView(valid))
            .write(toFile: "\(dir)/valid.json", atomically: true, encoding: .utf8)
        var base = NumericReader()
        base.inputField = "d.y"
        base.labelField = "c"
        XCTAssertEqual(try base.read(inputs: ["\(dir)/valid.json"], labels: []).count, 2)
        for case_ in 0..<600 {
            var text = valid
            for k in 0..<(1 + case_ % 3) {
                let at = random.integer(below: text.count, stream: UInt64(case_), index: UInt64(2 * k))
                let c = alphabet[random.integer(below: alphabet.count, stream: UInt64(case_), index: UInt64(2 * k + 1))]
                if k == 1 && case_ % 5 == 0 { text.insert(c, at: at) } else { text[at] = c }
            }
            var view = String.UnicodeScalarView()
            view.append(contentsOf: text)
            // The same text as one JSON list and, split at its records, as JSON Lines.
            let path = "\(dir)/f\(case_ % 5)." + (case_ % 2 == 0 ? "json" : "jsonl")
            let body = case_ % 2 == 0 ? String(view) : String(view).replacingOccurrences(of: "}, {", with: "}\n{")
            try body.write(toFile: path, atomically: true, encoding: .utf8)
            for layout in [SampleLayout.sequence, .vector] {
                var reader = NumericReader()
                reader.inputField = case_ % 7 == 0 ? "" : "d.y"
                reader.labelField = "c"
                reader.layout = layout
                if (try? reader.read(inputs: [path], labels: [])) != nil { read += 1 } else { refused += 1 }
            }
        }
        XCTAssertGreaterThan(refused, 300)
        XCTAssertGreaterThan(read, 10, "mutations of the numbers still read")
    }

    /// Nesting deep enough to overflow a recursive reader's stack is refused by the parser.
    func testDeeplyNestedJSONIsRefusedNotACrash() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let deep = String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000)
        try deep.write(toFile: "\(dir)/deep.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try NumericReader().read(inputs: ["\(dir)/deep.json"], labels: []))
    }

    func testMutatedCSVTextIsReadOrRefused() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let valid = Array("label,a,b,c\ncat,1,2,3\ndog,\"4\",5,NaN\neel,7,8,9\n".unicodeScalars)
        let alphabet = Array(",\"\n\r\t;.-+eE0123456789abcNaNinf ".unicodeScalars)
        let random = CounterRandom(seed: 7, purpose: .synthetic)
        for case_ in 0..<500 {
            var text = valid
            for k in 0..<3 {
                let at = random.integer(below: text.count, stream: UInt64(case_), index: UInt64(2 * k))
                let c = alphabet[random.integer(below: alphabet.count, stream: UInt64(case_), index: UInt64(2 * k + 1))]
                text[at] = c
            }
            var view = String.UnicodeScalarView()
            view.append(contentsOf: text)
            let path = "\(dir)/f\(case_ % 7).csv"
            try String(view).write(toFile: path, atomically: true, encoding: .utf8)
            for layout in [SampleLayout.sequence, .vector] {
                var reader = NumericReader()
                reader.header = case_ % 2 == 0
                reader.labelColumns = case_ % 3 == 0 ? ["label"] : ["0"]
                reader.layout = layout
                _ = try? reader.read(inputs: [path], labels: [])
            }
        }
    }
}
