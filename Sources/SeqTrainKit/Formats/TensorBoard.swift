import CKernels
import Foundation

/// TensorBoard event files (`events.out.tfevents.<time>.<host>`), written without TensorFlow: a
/// sequence of records, each `length (u64 LE) | masked CRC-32C of length | Event proto | masked
/// CRC-32C of the proto`. The Event protos are encoded here by hand (the few fields used: wall
/// time, step, file version, and a Summary of scalar or text values).
public final class TensorBoardWriter {
    public let path: String

    /// Creates the directory and a new event file in it, starting with the file-version event.
    public init(directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw SeqTrainError("\(directory): cannot create the TensorBoard directory: \(describeFileError(error))")
        }
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let now = Date().timeIntervalSince1970
        // The time in the name orders the files of a resumed run after the first ones.
        let base = "\(directory)/events.out.tfevents.\(Int(now)).\(String(cString: host)).\(getpid())"
        var name = base, again = 1
        while FileManager.default.fileExists(atPath: name) { name = "\(base).\(again)"; again += 1 }
        path = name
        var event = ProtoMessage()
        event.double(1, now)
        event.bytes(3, Array("brain.Event:2".utf8))
        try write(event)
    }

    /// One scalar per name at `step` (TensorBoard's "Scalars" tab).
    public func scalars(_ values: [(name: String, value: Double)], step: Int) throws {
        var summary = ProtoMessage()
        for (name, value) in values where value.isFinite {
            var item = ProtoMessage()
            item.bytes(1, Array(name.utf8))
            item.float(2, Float(value))
            summary.message(1, item)
        }
        try write(summary: summary, step: step)
    }

    /// A text value (TensorBoard's "Text" tab): a string tensor with the text plugin's metadata.
    public func text(_ name: String, _ text: String, step: Int) throws {
        var plugin = ProtoMessage()
        plugin.bytes(1, Array("text".utf8))
        var metadata = ProtoMessage()
        metadata.message(1, plugin)
        var dimension = ProtoMessage()
        dimension.varint(1, 1)
        var shape = ProtoMessage()
        shape.message(2, dimension)
        var tensor = ProtoMessage()
        tensor.varint(1, 7)  // DT_STRING
        tensor.message(2, shape)
        tensor.bytes(8, Array(text.utf8))
        var item = ProtoMessage()
        item.bytes(1, Array(name.utf8))
        item.message(9, metadata)
        item.message(8, tensor)
        var summary = ProtoMessage()
        summary.message(1, item)
        try write(summary: summary, step: step)
    }

    /// A restart at `step`: TensorBoard drops the events of earlier files logged after it (what the
    /// killed run wrote past its last checkpoint).
    public func restart(at step: Int) throws {
        var log = ProtoMessage()
        log.varint(1, 1)  // SessionLog.START
        var event = ProtoMessage()
        event.double(1, Date().timeIntervalSince1970)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.message(6, log)
        try write(event)
    }

    func write(summary: ProtoMessage, step: Int) throws {
        var event = ProtoMessage()
        event.double(1, Date().timeIntervalSince1970)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.message(5, summary)
        try write(event)
    }

    /// Appends one record (DurableFile.append cuts a failed write back: no torn record).
    func write(_ event: ProtoMessage) throws {
        var length = UInt64(event.bytes.count).littleEndian
        var record = withUnsafeBytes(of: &length) { Array($0) }
        record += Self.littleEndian(Self.maskedCRC(record))
        record += event.bytes
        record += Self.littleEndian(Self.maskedCRC(event.bytes))
        try DurableFile.append(bytes: record, to: path)
    }

    /// TensorBoard's masked CRC-32C: rotated right by 15 bits plus a constant.
    public static func maskedCRC(_ bytes: [UInt8]) -> UInt32 {
        let crc = bytes.withUnsafeBufferPointer { st_crc32c(0, $0.baseAddress, Int64($0.count)) }
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    static func littleEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
}

/// A protocol-buffer message being encoded: fields appended in the order given.
struct ProtoMessage {
    var bytes: [UInt8] = []

    mutating func key(_ field: Int, _ wireType: UInt64) { appendVarint(UInt64(field) << 3 | wireType) }

    mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func varint(_ field: Int, _ value: UInt64) { key(field, 0); appendVarint(value) }

    mutating func double(_ field: Int, _ value: Double) {
        key(field, 1)
        bytes += (0..<8).map { UInt8(truncatingIfNeeded: value.bitPattern >> (8 * $0)) }
    }

    mutating func float(_ field: Int, _ value: Float) {
        key(field, 5)
        bytes += (0..<4).map { UInt8(truncatingIfNeeded: value.bitPattern >> (8 * UInt32($0))) }
    }

    mutating func bytes(_ field: Int, _ value: [UInt8]) {
        key(field, 2)
        appendVarint(UInt64(value.count))
        bytes += value
    }

    mutating func message(_ field: Int, _ value: ProtoMessage) { bytes(field, value.bytes) }
}
