import Foundation

/// Element types a safetensors file may hold that seqtrain reads.
public enum TensorDType: String, CaseIterable {
    case F32, F64, I64, I32, U8
    public var size: Int {
        switch self {
        case .F32, .I32: return 4
        case .F64, .I64: return 8
        case .U8: return 1
        }
    }
}

public struct StoredTensor: Equatable {
    public var dtype: TensorDType
    public var shape: [Int]
    public var bytes: [UInt8]

    /// The elements the shape holds; a reader has checked that the bytes match it.
    public var elementCount: Int { bytes.count / dtype.size }

    public init(floats: [Float], shape: [Int]) {
        dtype = .F32
        self.shape = shape
        bytes = floats.withUnsafeBytes { Array($0) }
    }

    public init(int64s: [Int64], shape: [Int]) {
        dtype = .I64
        self.shape = shape
        bytes = int64s.withUnsafeBytes { Array($0) }
    }

    init(dtype: TensorDType, shape: [Int], bytes: [UInt8]) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    private func load<T>(_: T.Type) -> [T] {
        bytes.withUnsafeBytes { raw in (0..<elementCount).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self) } }
    }

    /// The values as float32 (F32 as is, F64 narrowed).
    public func floats() throws -> [Float] {
        switch dtype {
        case .F32: return load(Float.self)
        case .F64: return load(Double.self).map(Float.init)
        default: throw SeqTrainError("expected a floating-point tensor, found \(dtype.rawValue)")
        }
    }

    /// The values as integers (I64, I32, U8).
    public func integers() throws -> [Int] {
        switch dtype {
        case .I64: return load(Int64.self).map { Int($0) }
        case .I32: return load(Int32.self).map { Int($0) }
        case .U8: return bytes.map { Int($0) }
        default: throw SeqTrainError("expected an integer tensor, found \(dtype.rawValue)")
        }
    }
}

/// A safetensors file: an 8-byte little-endian header length, a JSON header mapping names to
/// {dtype, shape, data_offsets} plus an optional "__metadata__" of strings, then the raw data.
/// Checkpoints use it so `safetensors.torch.load_file` reads them in PyTorch.
public struct SafetensorsFile {
    public var tensors: [String: StoredTensor] = [:]
    public var metadata: [String: String] = [:]

    public init() {}

    /// The `__metadata__` of the file at `path`, reading its header only (nil when it is not a
    /// readable safetensors file).
    public static func metadata(atPath path: String) -> [String: String]? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let prefix = try? handle.read(upToCount: 8), prefix.count == 8 else { return nil }
        let length = prefix.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length < 100_000_000, let header = try? handle.read(upToCount: Int(length)), header.count == Int(length),
              let object = (try? JSONSerialization.jsonObject(with: header)) as? [String: Any] else { return nil }
        return (object["__metadata__"] as? [String: Any])?.compactMapValues { $0 as? String } ?? [:]
    }

    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SeqTrainError("\(path): cannot read the file: \(unreadableReason(path))")
        }
        try self.init(data: data, source: path)
    }

    /// Parses and validates; every error names `source` and what is wrong.
    public init(data: Data, source: String) throws {
        func fail(_ what: String) -> SeqTrainError { SeqTrainError("\(source): \(what)") }
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else {
            throw fail("only \(bytes.count) bytes: too short for a safetensors file, which starts with an 8-byte header length")
        }
        let headerLength = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the file (\(bytes.count) bytes): the file is truncated or not safetensors")
        }
        let dataStart = 8 + Int(headerLength)
        guard let header = try? JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart])) as? [String: Any] else {
            throw fail("the header is not a JSON object: the file is damaged or not safetensors")
        }
        // A JSON parser keeps one of two equal keys silently; a tensor named twice is an error.
        let names = JSONKeys.topLevel(bytes[8..<dataStart])
        if let twice = Dictionary(grouping: names, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw fail("the header names \(twice == "__metadata__" ? "__metadata__" : "tensor \(twice)") twice: the file is damaged")
        }
        let dataLength = bytes.count - dataStart
        var spans: [(Int, Int, String)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let meta = value as? [String: Any] else { throw fail("__metadata__ must map names to strings") }
                let strings = meta.compactMapValues { $0 as? String }
                guard strings.count == meta.count else { throw fail("__metadata__ must map names to strings") }
                metadata = strings
                continue
            }
            guard let entry = value as? [String: Any], let dtypeName = entry["dtype"] as? String,
                  let shapeValues = entry["shape"] as? [NSNumber], let offsets = entry["data_offsets"] as? [NSNumber],
                  offsets.count == 2 else {
                throw fail("tensor \(name): the header entry needs dtype, shape and data_offsets [begin, end]")
            }
            guard let dtype = TensorDType(rawValue: dtypeName) else {
                throw fail("tensor \(name): dtype \(dtypeName) is not supported (use one of \(TensorDType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let shape = Self.counts(shapeValues) else {
                throw fail("tensor \(name): shape \(shapeValues) must list whole, non-negative dimensions")
            }
            guard let range = Self.counts(offsets), range[0] <= range[1], range[1] <= dataLength else {
                throw fail("tensor \(name): data_offsets \(offsets) lie outside the \(dataLength) bytes of data: the file is truncated or damaged")
            }
            let begin = range[0], end = range[1]
            var expected: Int? = dtype.size
            for dimension in shape { expected = expected.flatMap { $0.multipliedReportingOverflow(by: dimension).overflow ? nil : $0 * dimension } }
            guard let expected else { throw fail("tensor \(name): shape \(shape) has more elements than any file can hold") }
            guard end - begin == expected else {
                throw fail("tensor \(name): \(end - begin) bytes of data for shape \(shape) of \(dtype.rawValue), which needs \(expected)")
            }
            spans.append((begin, end, name))
            tensors[name] = StoredTensor(dtype: dtype, shape: shape, bytes: Array(bytes[(dataStart + begin)..<(dataStart + end)]))
        }
        spans.sort { $0.0 < $1.0 }
        for (a, b) in zip(spans, spans.dropFirst()) where b.0 < a.1 {
            throw fail("tensors \(a.2) and \(b.2) overlap in the data")
        }
        try verifyChecksums(source: source)
    }

    /// Whole numbers from 0 to 2^53 (JSON numbers arrive as doubles or integers; true is not 1).
    static func counts(_ values: [NSNumber]) -> [Int]? {
        var out: [Int] = []
        for value in values {
            // JSON's true and false arrive as NSNumbers of a char or Bool type.
            guard !["c", "B"].contains(String(cString: value.objCType)) else { return nil }
            let double = value.doubleValue
            guard double.isFinite, double >= 0, double <= 9_007_199_254_740_992, double == double.rounded(.towardZero) else { return nil }
            out.append(Int(double))
        }
        return out
    }

    /// The values all tensors hold together (what a model loaded from the file can have).
    public var storedValues: Int { tensors.values.reduce(0) { $0 + $1.elementCount } }

    /// Metadata key of the tensors' CRC-32s, written by seqtrain: {"name": "8 hex digits"}.
    public static let checksumKey = "seqtrain.tensor_crc32"

    /// Adds every tensor's CRC-32 to the metadata, so a flipped byte is found when the file is read.
    public mutating func addChecksums() {
        let sums = tensors.mapValues { DurableFile.checksum($0.bytes) }
        metadata[Self.checksumKey] = jsonObject(sums)
    }

    /// Compares each tensor with the CRC-32 its metadata stores (files without them pass).
    func verifyChecksums(source: String) throws {
        guard let text = metadata[Self.checksumKey] else { return }
        guard let stored = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: String] else {
            throw SeqTrainError("\(source): metadata \(Self.checksumKey) is not a JSON object of checksums: the file is damaged")
        }
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
            guard let expected = stored[name] else {
                throw SeqTrainError("\(source): tensor \(name) has no checksum in \(Self.checksumKey): the file is damaged")
            }
            let actual = DurableFile.checksum(tensor.bytes)
            guard actual == expected else {
                throw SeqTrainError("\(source): tensor \(name) fails its checksum (CRC-32 \(actual), stored \(expected)): the file is damaged")
            }
        }
        if let missing = stored.keys.sorted().first(where: { tensors[$0] == nil }) {
            throw SeqTrainError("\(source): tensor \(missing) is listed in \(Self.checksumKey) but missing: the file is damaged")
        }
    }

    public func tensor(_ name: String, in source: String) throws -> StoredTensor {
        guard let t = tensors[name] else { throw SeqTrainError("\(source): no tensor named \(name)") }
        return t
    }

    /// The file's bytes: tensors in name order, so the same contents always give the same bytes.
    public func serialized() throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            guard let t = tensors[name] else { continue }
            header[name] = ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.count]]
            offset += t.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names { out.append(contentsOf: tensors[name]?.bytes ?? []) }
        return out
    }

    /// Writes atomically and durably (`DurableFile.write`): a reader, or a run after a crash, sees
    /// the old file or the whole new one, never a part.
    public func write(to path: String) throws {
        let bytes: Data
        do {
            bytes = try serialized()
        } catch {
            throw SeqTrainError("\(path): cannot encode the safetensors header: \(describeFileError(error))")
        }
        try DurableFile.write(bytes, to: path)
    }
}

/// The keys of a JSON object's top level, in order and with repeats (which a parser hides).
/// Assumes text a JSON parser has already accepted.
enum JSONKeys {
    static func topLevel(_ bytes: ArraySlice<UInt8>) -> [String] {
        var keys: [String] = []
        var depth = 0, index = bytes.startIndex
        var expectingKey = false
        while index < bytes.endIndex {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                // A string: find its end, skipping escaped characters.
                var end = index + 1
                while end < bytes.endIndex && bytes[end] != UInt8(ascii: "\"") { end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1 }
                if depth == 1 && expectingKey, end < bytes.endIndex,
                   let key = (try? JSONSerialization.jsonObject(with: Data(bytes[index...end]), options: .fragmentsAllowed)) as? String {
                    keys.append(key)
                    expectingKey = false
                }
                index = end + 1
                continue
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                expectingKey = depth == 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                expectingKey = depth == 1
            default:
                break
            }
            index += 1
        }
        return keys
    }
}
