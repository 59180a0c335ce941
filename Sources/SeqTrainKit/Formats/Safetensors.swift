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

    public var elementCount: Int { shape.reduce(1, *) }

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

    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SeqTrainError("\(path): cannot read the file (does it exist, and is it readable?)")
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
        let dataLength = bytes.count - dataStart
        var spans: [(Int, Int, String)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let meta = value as? [String: Any], meta.values.allSatisfy({ $0 is String }) else {
                    throw fail("__metadata__ must map names to strings")
                }
                metadata = meta.mapValues { $0 as! String }
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
            let shape = shapeValues.map(\.intValue), begin = offsets[0].intValue, end = offsets[1].intValue
            guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("tensor \(name): negative dimension in shape \(shape)") }
            guard begin >= 0, begin <= end, end <= dataLength else {
                throw fail("tensor \(name): data_offsets [\(begin), \(end)] lie outside the \(dataLength) bytes of data: the file is truncated")
            }
            let expected = shape.reduce(1, *) * dtype.size
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
            let t = tensors[name]!
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
        for name in names { out.append(contentsOf: tensors[name]!.bytes) }
        return out
    }

    /// Writes atomically: a reader sees the old file or the whole new one, never a part.
    public func write(to path: String) throws {
        do {
            try serialized().write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch let error as SeqTrainError {
            throw error
        } catch {
            throw SeqTrainError("\(path): cannot write the checkpoint: \(error.localizedDescription)")
        }
    }
}
