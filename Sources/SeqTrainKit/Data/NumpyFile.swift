import Foundation

/// A NumPy `.npy` array (format versions 1.0, 2.0 and 3.0): little-endian or byte-order-free
/// float32, float64, int8 to int64, uint8 to uint64 and bool, in C order. The reader checks every
/// size against the file before it allocates and never traps: a bad file is an error naming it.
public struct NumpyArray {
    public enum DType: String, CaseIterable {
        case float32 = "f4", float64 = "f8", int8 = "i1", int16 = "i2", int32 = "i4", int64 = "i8"
        case uint8 = "u1", uint16 = "u2", uint32 = "u4", uint64 = "u8", bool = "b1"

        public var size: Int { Int(rawValue.dropFirst())! }
        public var isInteger: Bool { self != .float32 && self != .float64 }
    }

    public let shape: [Int]
    public let dtype: DType
    /// The elements' bytes, little-endian, C order.
    let data: Data

    public var count: Int { shape.reduce(1, *) }

    public init(shape: [Int], dtype: DType, data: Data) {
        self.shape = shape
        self.dtype = dtype
        self.data = data
    }

    public init(floats: [Float], shape: [Int]) {
        self.init(shape: shape, dtype: .float32, data: floats.withUnsafeBytes { Data($0) })
    }

    public init(integers: [Int64], shape: [Int]) {
        self.init(shape: shape, dtype: .int64, data: integers.withUnsafeBytes { Data($0) })
    }

    /// Element i as a Double (exact for integers up to 2⁵³).
    @inline(__always)
    func element(_ raw: UnsafeRawBufferPointer, _ i: Int) -> Double {
        let o = i * dtype.size
        switch dtype {
        case .float32: return Double(Float(bitPattern: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self).littleEndian))
        case .float64: return Double(bitPattern: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self).littleEndian)
        case .int8: return Double(Int8(bitPattern: raw[o]))
        case .int16: return Double(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int16.self)))
        case .int32: return Double(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int32.self)))
        case .int64: return Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int64.self)))
        case .uint8, .bool: return Double(raw[o])
        case .uint16: return Double(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
        case .uint32: return Double(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)))
        case .uint64: return Double(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self)))
        }
    }

    /// Every element as float32 (integers converted, NaN kept).
    public func floats() -> [Float] {
        data.withUnsafeBytes { raw in (0..<count).map { Float(element(raw, $0)) } }
    }

    /// Every element as a Double.
    public func doubles() -> [Double] {
        data.withUnsafeBytes { raw in (0..<count).map { element(raw, $0) } }
    }

    // MARK: reading

    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SeqTrainError("\(path): cannot read the file: \(unreadableReason(path))")
        }
        try self.init(data, source: path)
    }

    public init(_ file: Data, source path: String) throws {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
        guard file.count >= 10, Array(file.prefix(6)) == magic else {
            throw SeqTrainError("\(path): not a NumPy .npy file (it does not start with \\x93NUMPY); save arrays with numpy.save")
        }
        let bytes = [UInt8](file.prefix(12))
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard file.count >= 12 else { throw SeqTrainError("\(path): truncated .npy header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw SeqTrainError("\(path): .npy format version \(major).\(bytes[7]) is not supported (1.0, 2.0 and 3.0 are)")
        }
        guard file.count >= headerStart + headerLength else {
            throw SeqTrainError("\(path): truncated .npy header: it announces \(headerLength) bytes, the file has \(file.count - headerStart)")
        }
        let headerData = file.subdata(in: (file.startIndex + headerStart)..<(file.startIndex + headerStart + headerLength))
        guard let header = String(data: headerData, encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw SeqTrainError("\(path): the .npy header is not text")
        }
        let (descr, fortran, shape) = try NumpyArray.parseHeader(header, source: path)
        guard !fortran else {
            throw SeqTrainError("\(path): the array is in Fortran order; save it in C order (numpy.ascontiguousarray(x) before numpy.save)")
        }
        var code = descr
        let order = code.first
        if order == "<" || order == "|" || order == "=" { code.removeFirst() }
        if order == ">" {
            throw SeqTrainError("\(path): the array is big-endian ('\(descr)'); convert it with x.astype(x.dtype.newbyteorder('<'))")
        }
        if code == "?" { code = "b1" }
        guard let dtype = DType(rawValue: code) else {
            let kind = code.hasPrefix("O") ? "object arrays (Python objects) cannot be read" : "dtype '\(descr)' is not supported"
            throw SeqTrainError("\(path): \(kind); use float32, float64, int8 to int64, uint8 to uint64 or bool")
        }
        var total = 1
        for d in shape {
            let (product, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow, d >= 0 else { throw SeqTrainError("\(path): shape \(shape) is too large") }
            total = product
        }
        let (bytesNeeded, overflow) = total.multipliedReportingOverflow(by: dtype.size)
        guard !overflow else { throw SeqTrainError("\(path): shape \(shape) is too large") }
        let available = file.count - headerStart - headerLength
        guard available >= bytesNeeded else {
            throw SeqTrainError("\(path): truncated data: shape \(shape) of \(descr) needs \(bytesNeeded) bytes, the file holds \(available)")
        }
        guard available == bytesNeeded else {
            throw SeqTrainError("\(path): \(available - bytesNeeded) bytes after the data of shape \(shape); the file is not one .npy array")
        }
        let start = file.startIndex + headerStart + headerLength
        self.init(shape: shape, dtype: dtype, data: file.subdata(in: start..<(start + bytesNeeded)))
    }

    /// The header's Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }.
    static func parseHeader(_ header: String, source path: String) throws -> (String, Bool, [Int]) {
        func fail(_ what: String) -> SeqTrainError { SeqTrainError("\(path): malformed .npy header (\(what)): \(header.prefix(120))") }
        func value(of key: String) throws -> Substring {
            guard let keyRange = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else { throw fail("no '\(key)'") }
            let rest = header[keyRange.upperBound...].drop { $0 == " " }
            guard rest.first == ":" else { throw fail("no ':' after '\(key)'") }
            return rest.dropFirst().drop { $0 == " " }
        }
        let descrText = try value(of: "descr")
        guard let quote = descrText.first, quote == "'" || quote == "\"",
              let end = descrText.dropFirst().firstIndex(of: quote) else {
            throw fail("descr is not a string; structured dtypes are not supported")
        }
        let descr = String(descrText[descrText.index(after: descrText.startIndex)..<end])
        let fortranText = try value(of: "fortran_order")
        let fortran: Bool
        if fortranText.hasPrefix("True") { fortran = true } else if fortranText.hasPrefix("False") { fortran = false } else { throw fail("fortran_order") }
        let shapeText = try value(of: "shape")
        guard shapeText.first == "(", let close = shapeText.firstIndex(of: ")") else { throw fail("shape is not a tuple") }
        var shape: [Int] = []
        for part in shapeText[shapeText.index(after: shapeText.startIndex)..<close].split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "L", with: "")
            if trimmed.isEmpty { continue }
            guard let d = Int(trimmed), d >= 0 else { throw fail("shape entry '\(trimmed)' is not a non-negative integer") }
            shape.append(d)
        }
        return (descr, fortran, shape)
    }

    // MARK: writing

    /// The array as a version 1.0 .npy file (version 2.0 when the header needs it).
    public func encoded() -> Data {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        let order = dtype.size == 1 ? "|" : "<"
        var header = "{'descr': '\(order)\(dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        let prefix = header.utf8.count + 1 + 10 > 65535 ? 12 : 10
        let padding = (64 - (prefix + header.utf8.count + 1) % 64) % 64
        header += String(repeating: " ", count: padding) + "\n"
        var out = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, prefix == 10 ? 1 : 2, 0])
        let length = header.utf8.count
        if prefix == 10 {
            out.append(contentsOf: [UInt8(length & 0xff), UInt8(length >> 8)])
        } else {
            out.append(contentsOf: (0..<4).map { UInt8((length >> (8 * $0)) & 0xff) })
        }
        out.append(Data(header.utf8))
        out.append(data)
        return out
    }

    public func write(to path: String) throws {
        do {
            try encoded().write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw SeqTrainError("\(path): cannot write: \(describeFileError(error))")
        }
    }
}
