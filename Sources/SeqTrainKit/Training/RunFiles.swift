import Foundation

/// The files seqtrain writes into a run directory, recognized by their names (and config.toml by
/// its first line), so that `train --overwrite` removes only those and a command's `--out` never
/// replaces one. Everything else in a run directory is the user's and stays.
///
///     RUN/config.toml                        the resolved config (first line: `configMarker`)
///     RUN/metrics.jsonl                      one line per logged step
///     RUN/.lock                              the live run's lock (RunDirectoryLock)
///     RUN/timeline-rank-R.json, rank-R.log   metrics.timeline and --debug (Timeline)
///     RUN/report.txt, per_class.csv, confusion_matrix.csv   the final validation's report
///     RUN/checkpoints/step-NNNNNNNN.{safetensors,state.safetensors,manifest.json}
///     RUN/best_checkpoint.json               which checkpoint is the best (checkpoint.keep_best)
///     RUN/tensorboard/events.out.tfevents.*
public enum RunFiles {
    public enum Kind: String, CaseIterable {
        case checkpoint, metrics, config, timeline, tensorboard, report, lock
    }

    /// The first line of every config.toml `seqtrain train` writes: how a later run knows the file
    /// is seqtrain's and may be replaced.
    public static let configMarker =
        "# seqtrain run config: written by `seqtrain train` for the run in this directory; it replaces this file"
    public static let metricsName = "metrics.jsonl", configName = "config.toml", lockName = ".lock"
    public static let checkpointsFolder = "checkpoints", tensorboardFolder = "tensorboard"
    /// What the trainer's final validation writes: report.txt and the kinds' `ValidationResult.reportFiles`.
    public static let reportNames: Set<String> = ["report.txt", "per_class.csv", "confusion_matrix.csv"]

    /// The kind of seqtrain file `name` is, in `folder` of a run directory ("" for the run directory
    /// itself, or "checkpoints", "tensorboard"); nil for a name seqtrain does not write there.
    /// config.toml is named only: whether seqtrain wrote it is `isSeqtrainConfig`.
    public static func kind(of name: String, in folder: String) -> Kind? {
        switch folder {
        case checkpointsFolder:
            return isCheckpointName(name) ? .checkpoint : nil
        case tensorboardFolder:
            return name.hasPrefix("events.out.tfevents.") ? .tensorboard : nil
        case "":
            if name == metricsName { return .metrics }
            if name == configName { return .config }
            if name == lockName { return .lock }
            if name == BestCheckpointRecord.fileName { return .checkpoint }
            if reportNames.contains(name) { return .report }
            let trace = isRankFile(name, prefix: "timeline-rank-", suffix: ".json")
            return trace || isRankFile(name, prefix: "rank-", suffix: ".log") ? .timeline : nil
        default:
            return nil
        }
    }

    /// `step-NNNNNNNN.safetensors`, `.state.safetensors`, `.manifest.json` (8 digits or more).
    static func isCheckpointName(_ name: String) -> Bool {
        guard name.hasPrefix("step-") else { return false }
        let rest = name.dropFirst("step-".count)
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        guard digits.count >= 8 else { return false }
        return [".safetensors", ".state.safetensors", ".manifest.json"].contains(String(rest.dropFirst(digits.count)))
    }

    static func isRankFile(_ name: String, prefix: String, suffix: String) -> Bool {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix), name.count > prefix.count + suffix.count else {
            return false
        }
        return name.dropFirst(prefix.count).dropLast(suffix.count).allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// Whether the file at `path` is a config.toml seqtrain wrote: a regular file whose first line
    /// is `configMarker`, or (seqtrain before the marker) whose first two lines are its BLAS and
    /// participants header.
    public static func isSeqtrainConfig(_ path: String) -> Bool {
        guard let type = (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType,
              type == .typeRegular, let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = String(decoding: handle.readData(ofLength: 4096), as: UTF8.self)
        let lines = head.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false)
        if lines.first?.hasPrefix(configMarker) == true { return true }
        return lines.count >= 2 && lines[0].hasPrefix("# BLAS: ") && lines[1].hasPrefix("# seqtrain: ")
    }

    /// Whether `directory` holds a run: its lock, its metrics, or a config.toml seqtrain wrote.
    public static func isRunDirectory(_ directory: String) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: "\(directory)/\(lockName)") || fm.fileExists(atPath: "\(directory)/\(metricsName)")
            || isSeqtrainConfig("\(directory)/\(configName)")
    }

    // MARK: before a run starts

    /// Refuses a run directory whose config.toml seqtrain did not write: the run would replace it.
    static func refuseForeignConfig(in runDirectory: String) throws {
        let path = "\(runDirectory)/\(configName)"
        var exists = FileManager.default.fileExists(atPath: path)
        if !exists, (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) != nil { exists = true }
        guard exists, !isSeqtrainConfig(path) else { return }
        throw SeqTrainError("\(path): this config.toml was not written by seqtrain (its first line is not"
            + " seqtrain's header), and a run in \(runDirectory) would replace it with the run's resolved config;"
            + " set job.run_dir to a folder of its own (a new one, e.g. \(runDirectory)/runs/NAME),"
            + " or move the file out of \(runDirectory)")
    }

    /// Refuses `--overwrite` of a run directory with another run's directory (its `.lock`) anywhere
    /// below it, live or not: starting over around another run mixes two runs' files, and a lock on
    /// a shared file system is not always visible from this host.
    static func refuseNestedRuns(below runDirectory: String) throws {
        guard let walk = FileManager.default.enumerator(atPath: runDirectory) else { return }
        while let relative = walk.nextObject() as? String {
            guard (relative as NSString).lastPathComponent == lockName, relative != lockName else { continue }
            let nested = "\(runDirectory)/" + (relative as NSString).deletingLastPathComponent
            if let holder = liveHolder(ofLock: "\(runDirectory)/\(relative)") {
                throw SeqTrainError("\(runDirectory): --overwrite refused: \(nested) inside it is the run directory"
                    + " of a live seqtrain run (\(holder)); let that run end or stop it and move \(nested) out of"
                    + " \(runDirectory), or choose another job.run_dir")
            }
            throw SeqTrainError("\(runDirectory): --overwrite refused: \(nested) inside it is another run's"
                + " directory (it holds \(nested)/\(lockName)); move \(nested) out of \(runDirectory),"
                + " or choose another job.run_dir")
        }
    }

    /// Who holds the lock file at `path` (its text), when a process holds it; nil when none does.
    static func liveHolder(ofLock path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        if flock(descriptor, LOCK_SH | LOCK_NB) == 0 {
            flock(descriptor, LOCK_UN)
            return nil
        }
        guard errno == EWOULDBLOCK else { return nil }
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = pread(descriptor, &buffer, buffer.count, 0)
        let text = String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "its holder did not say who it is" : text
    }

    /// What `removeOwnFiles` removed, by kind, and what it left in seqtrain's folders.
    public struct Removal {
        public var files: [Kind: Int] = [:]
        public var checkpoints = 0
        public var kept = 0

        /// One line: "--overwrite: removed from runs/x: 3 checkpoints (9 files), metrics.jsonl, ...".
        public func line(_ runDirectory: String) -> String {
            func count(_ n: Int, _ one: String) -> String { "\(n) " + (n == 1 ? one : one + "s") }
            var parts: [String] = []
            if let n = files[.checkpoint] {
                parts.append(count(checkpoints, "checkpoint") + " (" + count(n, "file") + ")")
            }
            if files[.metrics] != nil { parts.append(metricsName) }
            if files[.config] != nil { parts.append(configName) }
            if let n = files[.timeline] { parts.append(count(n, "timeline file")) }
            if let n = files[.tensorboard] { parts.append(count(n, "TensorBoard event file")) }
            if let n = files[.report] { parts.append(count(n, "report file")) }
            let removed = parts.isEmpty ? "nothing of seqtrain's to remove in \(runDirectory)"
                : "removed from \(runDirectory): " + parts.joined(separator: ", ")
            let folders = "in its checkpoints/ and tensorboard/ folders"
            let others = kept == 0 ? "" : "; kept \(count(kept, "other file")) \(folders)"
            return "--overwrite: " + removed + others
        }
    }

    /// Removes the files seqtrain wrote into `runDirectory` (never a folder, never another file,
    /// never the lock); a checkpoint's manifest goes first, so none is ever listed with a file missing.
    static func removeOwnFiles(_ runDirectory: String) throws -> Removal {
        let fm = FileManager.default
        var removal = Removal()
        for folder in ["", checkpointsFolder, tensorboardFolder] {
            let directory = folder.isEmpty ? runDirectory : "\(runDirectory)/\(folder)"
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            let names = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
            func order(_ name: String) -> (Int, String) { (name.hasSuffix(".manifest.json") ? 0 : 1, name) }
            let manifestsFirst = names.sorted { order($0) < order($1) }
            for name in manifestsFirst {
                let path = "\(directory)/\(name)"
                guard let kind = kind(of: name, in: folder), kind != .lock,
                      kind != .config || isSeqtrainConfig(path) else {
                    if !folder.isEmpty { removal.kept += 1 }
                    continue
                }
                var entryIsDirectory: ObjCBool = false
                guard fm.fileExists(atPath: path, isDirectory: &entryIsDirectory), !entryIsDirectory.boolValue else {
                    if !folder.isEmpty { removal.kept += 1 }
                    continue
                }
                guard unlink(path) == 0 else {
                    throw DurableFile.failure(path, "remove it for --overwrite (remove it yourself or fix permissions)")
                }
                removal.files[kind, default: 0] += 1
                if kind == .checkpoint && name.hasSuffix(".manifest.json") { removal.checkpoints += 1 }
            }
        }
        // A folder seqtrain made and left empty goes too; one holding the user's files stays.
        rmdir("\(runDirectory)/\(tensorboardFolder)")
        return removal
    }

    // MARK: metrics.jsonl on --resume

    /// The lines of metrics.jsonl (`data`, read from `path`) to keep on a resume at `resumedStep`:
    /// those of steps up to it. A last line cut short by a crash (no newline, does not parse) is
    /// dropped; any other line that is not seqtrain's is refused with its line number, so that a
    /// resume never truncates metrics it cannot read.
    static func metricsLines(_ data: Data, path: String, throughStep resumedStep: Int) throws -> [Substring] {
        let fix = "--resume leaves it as it is; put back the run's own metrics.jsonl, or move this file out of the run"
            + " directory (the resumed run then starts a new one at the checkpoint's step), and resume again"
        guard let text = String(data: data, encoding: .utf8) else {
            throw SeqTrainError("\(path): not UTF-8 text, so not the metrics seqtrain writes; \(fix)")
        }
        func step(of line: Substring) -> Int? {
            ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["step"] as? Int
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        // What follows the last newline: nothing, or a last line without its newline.
        let unterminated = lines.removeLast()
        var kept: [Substring] = []
        for (index, line) in lines.enumerated() where !line.isEmpty {
            guard let step = step(of: line) else {
                let snippet = line.count > 60 ? line.prefix(60) + "..." : line
                throw SeqTrainError("\(path):\(index + 1): not a metrics line seqtrain wrote (\"\(snippet)\"); \(fix)")
            }
            if step <= resumedStep { kept.append(line) }
        }
        // An unterminated line that does not parse is one a crash cut short: it is written again.
        if let step = step(of: unterminated), step <= resumedStep { kept.append(unterminated) }
        return kept
    }
}

/// Outputs of the commands with `--out` (predict, encode, score, forecast, report): never one of
/// a run's own files, and replaced all at once (`DurableFile.replace`).
public enum OutputFiles {
    /// Refuses `path` when it names a file seqtrain keeps in a run directory (its metrics, config,
    /// lock, checkpoints, timeline, TensorBoard events, report), whether or not it exists yet.
    public static func refuseRunFile(_ path: String, option: String = "--out") throws {
        let url = URL(fileURLWithPath: path)
        let name = url.lastPathComponent
        // The real folder (symbolic links and `..` resolved), so another spelling is caught too.
        let given = url.deletingLastPathComponent().path
        let folder = URL(fileURLWithPath: realpath(given, nil).map { real in
            defer { free(real) }
            return String(cString: real)
        } ?? url.deletingLastPathComponent().standardizedFileURL.path)
        let run: String, kind: RunFiles.Kind?
        if [RunFiles.checkpointsFolder, RunFiles.tensorboardFolder].contains(folder.lastPathComponent) {
            run = folder.deletingLastPathComponent().path
            kind = RunFiles.kind(of: name, in: folder.lastPathComponent)
        } else {
            run = folder.path
            kind = RunFiles.kind(of: name, in: "")
        }
        guard let kind, RunFiles.isRunDirectory(run) else { return }
        let what: String
        switch kind {
        case .checkpoint: what = "a checkpoint file"
        case .tensorboard: what = "a TensorBoard event file"
        case .timeline: what = "a timeline file"
        case .metrics: what = "the metrics"
        case .config: what = "the resolved config"
        case .lock: what = "the lock"
        case .report: what = "the final validation's report"
        }
        throw SeqTrainError("\(option) \(path): that is \(what) of the run in \(run), which seqtrain never replaces;"
            + " give the output another name")
    }

    /// Writes every file of one command's output: refused when one is a run's own file; otherwise
    /// each goes to a temporary name first and all are renamed together, so a failure leaves the
    /// old outputs untouched.
    public static func write(_ files: [(path: String, bytes: Data)], option: String = "--out") throws {
        for file in files { try refuseRunFile(file.path, option: option) }
        try DurableFile.replace(files)
    }

    public static func write(_ text: String, to path: String, option: String = "--out") throws {
        try write([(path, Data(text.utf8))], option: option)
    }
}
