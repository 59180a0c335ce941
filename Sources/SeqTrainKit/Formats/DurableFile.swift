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
        let temporary = temporaryPath(for: path)
        try writeFlushed(bytes, to: temporary, for: path)
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw failure(path, "rename \(temporary) into place", code)
        }
        try syncDirectory(directoryOf(path))
    }

    static func directoryOf(_ path: String) -> String {
        let directory = split(path).directory
        return directory.isEmpty ? "." : directory
    }

    /// The folder part and the name of `path`, split by hand: NSString's path methods trap on a
    /// bare relative name such as "0".
    static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (slash == path.startIndex ? "/" : String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    /// `.tmp-NAME.PID[.suffix]` beside `path`: removed at a run's start when an interrupted write left it.
    static func temporaryPath(for path: String, suffix: String = "") -> String {
        let (directory, name) = split(path)
        return (directory.isEmpty ? "" : directory == "/" ? "/" : directory + "/") + "\(temporaryPrefix)\(name).\(getpid())\(suffix)"
    }

    /// Writes `bytes` to a new file `temporary` and flushes it to the disk; errors name `path`.
    static func writeFlushed(_ bytes: some DataProtocol, to temporary: String, for path: String) throws {
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
    }

    /// Replaces several files as one unit (the outputs of one command): every new file is written
    /// to a temporary name and flushed before any is renamed into place, and the old files are kept
    /// under a second name until the last rename, so a failure at any point leaves every old file
    /// as it was. `beforeRenames` runs between the two phases (a test hook).
    public static func replace(_ files: [(path: String, bytes: Data)], beforeRenames: () -> Void = {}) throws {
        guard Set(files.map(\.path)).count == files.count else {
            let paths = files.map(\.path).joined(separator: ", ")
            throw SeqTrainError("\(paths): one output path is given twice; give each output its own name")
        }
        // A rename over a directory fails: find that before any file is replaced.
        for file in files {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: file.path, isDirectory: &isDirectory), isDirectory.boolValue {
                throw SeqTrainError("\(file.path): is a directory, so the output cannot be written there;"
                    + " give another file name, or move the directory")
            }
        }
        var temporaries: [String] = [], backups: [String?] = []
        func removeTemporaries() {
            for path in temporaries { unlink(path) }
            for case let path? in backups { unlink(path) }
        }
        do {
            for file in files {
                let temporary = temporaryPath(for: file.path)
                try writeFlushed(file.bytes, to: temporary, for: file.path)
                temporaries.append(temporary)
            }
            for file in files {
                guard FileManager.default.fileExists(atPath: file.path) else { backups.append(nil); continue }
                let backup = temporaryPath(for: file.path, suffix: ".old")
                unlink(backup)
                // A second hard link costs nothing; a file system without them gets a copy.
                if link(file.path, backup) != 0 {
                    guard let old = FileManager.default.contents(atPath: file.path) else {
                        throw failure(file.path, "keep a copy of the old file while replacing it")
                    }
                    try writeFlushed(old, to: backup, for: file.path)
                }
                backups.append(backup)
            }
        } catch {
            removeTemporaries()
            throw error
        }
        beforeRenames()
        for (k, file) in files.enumerated() where rename(temporaries[k], file.path) != 0 {
            let code = errno
            // Put back what the earlier renames replaced: the old file, or no file where there was none.
            for (done, earlier) in files.prefix(k).enumerated() {
                if let backup = backups[done] { rename(backup, earlier.path) } else { unlink(earlier.path) }
            }
            removeTemporaries()
            throw failure(file.path, "rename \(temporaries[k]) into place (no output was replaced)", code)
        }
        for case let backup? in backups { unlink(backup) }
        for directory in Set(files.map { directoryOf($0.path) }).sorted() { try syncDirectory(directory) }
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
