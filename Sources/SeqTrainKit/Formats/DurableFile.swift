import CKernels
import Foundation

/// Files written so that a crash, a kill or a full disk never leaves a half-written one in place:
/// POSIX calls whose every error is reported (Foundation's FileHandle.write traps on I/O errors).
public enum DurableFile {
    /// The prefix of temporary files; a run removes leftovers of interrupted writes at start.
    public static let temporaryPrefix = ".tmp-"

    static func failure(_ path: String, _ what: String, _ code: Int32 = errno) -> SeqTrainError {
        let reason = String(cString: strerror(code))
        let hint = code == ENOSPC || code == EDQUOT || code == EFBIG ? " (free some space, or write the run elsewhere with job.run_dir)" : ""
        return SeqTrainError("\(path): cannot \(what): \(reason)\(hint)")
    }

    /// Writes all of `bytes` to `descriptor`, retrying short writes and interruptions.
    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw failure(path, "write")
            }
            offset += written
        }
    }

    /// Replaces the file at `path` with `bytes` as one unit: written to a temporary file beside it,
    /// flushed to the disk, renamed over `path`, and the directory flushed, so a reader (or a run
    /// after a crash) sees the old file or the whole new one.
    public static func write(_ bytes: some DataProtocol, to path: String) throws {
        // Split by hand: NSString's path methods trap on a bare relative name such as "0".
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let temporary = (directory.isEmpty ? "" : directory + "/") + "\(temporaryPrefix)\(name).\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw failure(path, "create \(temporary)") }
        do {
            let contiguous = Array(bytes)
            try contiguous.withUnsafeBytes { try writeAll(descriptor, $0, path: path) }
            guard fsync(descriptor) == 0 else { throw failure(path, "flush to disk") }
            guard close(descriptor) == 0 else { throw failure(path, "close") }
        } catch {
            close(descriptor)
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw failure(path, "rename \(temporary) into place", code)
        }
        try syncDirectory(directory.isEmpty ? "." : directory)
    }

    /// Flushes a directory's entries (a rename is durable only once its directory is).
    public static func syncDirectory(_ directory: String) throws {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure(directory, "open the directory") }
        defer { close(descriptor) }
        // Some file systems do not sync directories (EINVAL); the rename is then as durable as they allow.
        guard fsync(descriptor) == 0 || errno == EINVAL else { throw failure(directory, "flush the directory") }
    }

    /// Appends `text` to `path` (created when missing). A write that fails part-way is cut back, so
    /// the file never ends in a torn line; the error names the file and the reason.
    public static func append(_ text: String, to path: String) throws { try append(bytes: Array(text.utf8), to: path) }

    public static func append(bytes: [UInt8], to path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw failure(path, "open for appending") }
        defer { close(descriptor) }
        let size = lseek(descriptor, 0, SEEK_END)
        do {
            try bytes.withUnsafeBytes { try writeAll(descriptor, $0, path: path) }
        } catch {
            if size >= 0 { _ = ftruncate(descriptor, size) }
            throw error
        }
    }

    /// CRC-32 (IEEE) of `bytes`, as 8 hex digits.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> String {
        let crc = bytes.isEmpty ? 0 : st_crc32(0, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), Int64(bytes.count))
        return String(format: "%08x", crc)
    }

    public static func checksum(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { checksum($0) } }
}
