import Foundation

/// Every error seqtrain reports: what was wrong, where, and what to do, in one sentence or two.
public struct SeqTrainError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Writes `text` to stderr with stdio, which reports a failed write instead of trapping as
/// FileHandle.write does (stderr closed, or a full disk behind a redirect).
public func writeStandardError(_ text: String) {
    fputs(text, stderr)
    fflush(stderr)
}

/// "warning: …" on stderr.
public func printWarning(_ text: String) { writeStandardError("warning: \(text)\n") }

/// Why `path` cannot be read, in words ("it does not exist", "it is a directory, not a file"),
/// for the messages of every reader.
public func unreadableReason(_ path: String) -> String {
    var status = stat()
    guard stat(path, &status) == 0 else {
        switch errno {
        case ENOENT:
            if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
                let parent = String(path[..<slash])
                if !FileManager.default.fileExists(atPath: parent) { return "its folder \(parent) does not exist" }
            }
            return "it does not exist"
        case EACCES: return "permission denied on a folder of its path"
        case ENOTDIR: return "a part of its path is a file, not a folder"
        default: return String(cString: strerror(errno))
        }
    }
    if status.st_mode & S_IFMT == S_IFDIR { return "it is a directory, not a file" }
    if access(path, R_OK) != 0 { return "permission denied: this user may not read it" }
    return "reading it failed"
}

/// The reason behind a Foundation file error in words ("permission denied", "no space left on
/// device") rather than its "NSCocoaErrorDomain error 513".
public func describeFileError(_ error: Error) -> String {
    let ns = error as NSError
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    guard ns.domain == NSCocoaErrorDomain else { return ns.localizedDescription }
    switch CocoaError.Code(rawValue: ns.code) {
    case .fileNoSuchFile, .fileReadNoSuchFile: return "the file or its folder does not exist"
    case .fileReadNoPermission, .fileWriteNoPermission: return "permission denied"
    case .fileWriteOutOfSpace: return "no space left on the device"
    case .fileWriteVolumeReadOnly: return "the file system is read-only"
    case .fileWriteFileExists: return "a file of that name is in the way"
    case .fileWriteInvalidFileName, .fileReadInvalidFileName: return "the name is not a valid file name"
    default: return ns.localizedDescription
    }
}
