import Foundation
import ZIPFoundation

/// The arrays of a NumPy archive (`np.savez`, `np.savez_compressed`): a zip of `.npy` members,
/// stored or deflated. Members are read one at a time, their declared size checked before any
/// memory is given to them.
public struct NumpyArchive {
    public let path: String
    /// The arrays' names (member names without ".npy"), in archive order.
    public let names: [String]
    let archive: Archive

    public init(contentsOf path: String) throws {
        self.path = path
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw SeqTrainError("\(path): cannot read the file: \(unreadableReason(path))")
        }
        do {
            archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw SeqTrainError("\(path): not a NumPy archive (.npz is a zip file; "
                + "this one cannot be opened: \(error))")
        }
        names = archive.filter { $0.type == .file && $0.path.hasSuffix(".npy") }.map { String($0.path.dropLast(4)) }
        guard !names.isEmpty else { throw SeqTrainError("\(path): the archive holds no .npy arrays") }
    }

    /// The array `name`, or an error listing the archive's arrays and naming `key`.
    public func array(_ name: String, key: String) throws -> NumpyArray {
        guard let entry = archive[name + ".npy"] else {
            throw SeqTrainError("\(key) = \"\(name.prefix(60))\": \(path) has no such array; it holds "
                + names.prefix(12).joined(separator: ", ") + (names.count > 12 ? ", ..." : ""))
        }
        let declared = entry.uncompressedSize
        guard declared <= UInt64(Int.max / 2) else {
            throw SeqTrainError("\(path): array \(name) claims \(declared) bytes; the archive is damaged")
        }
        try MemoryCheck.require(floats: Int(declared) / 4 + 1, what: "array \(name) of \(path)",
                                fix: "split the archive, or save the array as .npy")
        var bytes = Data()
        bytes.reserveCapacity(Int(declared))
        do {
            _ = try archive.extract(entry) { chunk in
                // A member that inflates past its declared size is damaged (or a zip bomb).
                guard bytes.count + chunk.count <= Int(declared) else { throw SeqTrainError("larger than declared") }
                bytes.append(chunk)
            }
        } catch {
            throw SeqTrainError("\(path): array \(name) cannot be read (\(error)); the archive is damaged")
        }
        return try NumpyArray(bytes, source: "\(path)[\(name)]")
    }
}
