import Foundation

/// Checkpoints in a run directory: `checkpoints/step-NNNNNNNN.safetensors` holds the weights under
/// PyTorch's state_dict names, with the vocabulary and the resolved config in `__metadata__`;
/// `step-NNNNNNNN.state.safetensors` beside it holds the rest of the training state (optimizer
/// buffers, every lane's hidden state, counters) for `--resume`. Both carry CRC-32s of their
/// tensors; `step-NNNNNNNN.manifest.json`, written last, lists both files with their sizes and
/// CRC-32s. A checkpoint without its manifest does not exist (its write was interrupted).
public enum Checkpoint {
    public static func weightsPath(_ directory: String, step: Int) -> String {
        "\(directory)/checkpoints/" + String(format: "step-%08d.safetensors", step)
    }

    public static func statePath(forWeights path: String) -> String {
        String(path.dropLast(".safetensors".count)) + ".state.safetensors"
    }

    public static func manifestPath(forWeights path: String) -> String {
        String(path.dropLast(".safetensors".count)) + ".manifest.json"
    }

    /// Complete checkpoints (those with a manifest, and those of a seqtrain from before manifests)
    /// of a run directory, as weight-file paths, oldest first.
    public static func list(_ runDirectory: String) -> [String] {
        let dir = "\(runDirectory)/checkpoints"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        let complete = names.filter { $0.hasPrefix("step-") && $0.hasSuffix(".manifest.json") }
            .map { "\(dir)/" + String($0.dropLast(".manifest.json".count)) + ".safetensors" }
        let legacy = names.filter { $0.hasPrefix("step-") && $0.hasSuffix(".safetensors") && !$0.hasSuffix(".state.safetensors") }
            .map { "\(dir)/\($0)" }.filter(isLegacy)
        return (complete + legacy).sorted()
    }

    /// A checkpoint written before manifests and checksums existed: weights and state present, no
    /// manifest, no tensor checksums. Those writes were atomic (state first), so it is complete;
    /// an interrupted write of today always carries checksums.
    static func isLegacy(_ weightsPath: String) -> Bool {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: manifestPath(forWeights: weightsPath)), fm.fileExists(atPath: statePath(forWeights: weightsPath)),
              let metadata = SafetensorsFile.metadata(atPath: weightsPath) else { return false }
        return metadata[SafetensorsFile.checksumKey] == nil && metadata["seqtrain.kind"] != nil
    }

    /// Writes state, then weights, then the manifest, each durably (`DurableFile.write`);
    /// `beforeManifest` runs between (a test hook).
    public static func write(weights: SafetensorsFile, state: SafetensorsFile, to path: String, beforeManifest: () -> Void = {}) throws {
        var weights = weights, state = state
        weights.addChecksums()
        state.addChecksums()
        var entries: [String: Any] = [:]
        for (file, target) in [(state, statePath(forWeights: path)), (weights, path)] {
            let bytes: Data
            do { bytes = try file.serialized() } catch { throw SeqTrainError("\(target): cannot encode the safetensors header: \(error)") }
            try DurableFile.write(bytes, to: target)
            entries[(target as NSString).lastPathComponent] = ["bytes": bytes.count, "crc32": bytes.withUnsafeBytes { DurableFile.checksum($0) }]
        }
        beforeManifest()
        let manifest = try JSONSerialization.data(withJSONObject: ["files": entries], options: [.sortedKeys])
        try DurableFile.write(manifest, to: manifestPath(forWeights: path))
    }

    /// A checkpoint's weights and state, checked against its manifest (sizes, CRC-32s) and their
    /// tensors' CRC-32s. `state: false` reads the weights only (eval, sample, predict).
    public static func load(_ path: String, state: Bool) throws -> (weights: SafetensorsFile, state: SafetensorsFile?) {
        let manifestPath = manifestPath(forWeights: path)
        var expected: [String: (bytes: Int, crc32: String)] = [:]
        if FileManager.default.fileExists(atPath: manifestPath) {
            guard let data = FileManager.default.contents(atPath: manifestPath),
                  let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                  let files = object["files"] as? [String: Any] else {
                throw SeqTrainError("\(manifestPath): the manifest is not the JSON seqtrain writes: the checkpoint is damaged")
            }
            for (name, entry) in files {
                guard let entry = entry as? [String: Any], let bytes = entry["bytes"] as? Int, let crc = entry["crc32"] as? String else {
                    throw SeqTrainError("\(manifestPath): the entry of \(name) lacks bytes or crc32: the checkpoint is damaged")
                }
                expected[name] = (bytes, crc)
            }
        } else if state && !isLegacy(path) {
            throw SeqTrainError("\(manifestPath) is missing: the checkpoint was not completely written")
        }
        func read(_ file: String) throws -> SafetensorsFile {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw SeqTrainError("\(file): cannot read the file: \(unreadableReason(file))")
            }
            if let want = expected[(file as NSString).lastPathComponent] {
                guard data.count == want.bytes else {
                    throw SeqTrainError("\(file): \(data.count) bytes where its manifest says \(want.bytes): the file is truncated or damaged")
                }
                let crc = data.withUnsafeBytes { DurableFile.checksum($0) }
                guard crc == want.crc32 else {
                    throw SeqTrainError("\(file): fails its checksum (CRC-32 \(crc), manifest \(want.crc32)): the file is damaged")
                }
            } else if !expected.isEmpty {
                throw SeqTrainError("\(file) is not listed in its manifest: the checkpoint is damaged")
            }
            return try SafetensorsFile(data: data, source: file)
        }
        return (try read(path), state ? try read(statePath(forWeights: path)) : nil)
    }

    /// The newest complete checkpoint that passes its checks, loaded; damaged ones are named through
    /// `warn` and skipped. Nil when there is no complete checkpoint; an error when every one is damaged.
    public static func newestValid(_ runDirectory: String, state: Bool, warn: (String) -> Void)
        throws -> (path: String, weights: SafetensorsFile, state: SafetensorsFile?)? {
        let complete = list(runDirectory)
        var problems: [String] = []
        for path in complete.reversed() {
            do {
                let (weights, stateFile) = try load(path, state: state)
                if !problems.isEmpty { warn("using \(path), the newest checkpoint that passes its checks") }
                return (path, weights, stateFile)
            } catch let error as SeqTrainError {
                problems.append(error.message)
                warn("skipping a damaged checkpoint: \(error.message)")
            }
        }
        guard complete.isEmpty else {
            throw SeqTrainError("\(runDirectory)/checkpoints: all \(complete.count) checkpoint(s) are damaged (\(problems.joined(separator: "; "))); start over with --overwrite or restore the files")
        }
        return nil
    }

    /// A checkpoint file, or a run directory's best checkpoint (the newest valid one when it has no
    /// best; `select` chooses otherwise and says which); loaded and checked.
    public static func resolve(_ path: String) throws -> (path: String, weights: SafetensorsFile) {
        let selected = try select(path, choice: nil)
        return (selected.path, selected.weights)
    }

    /// Deletes all but the newest `keep` checkpoints, and never those of `protecting` (the best
    /// checkpoint), the manifest first (so a checkpoint is never listed with a file missing).
    public static func prune(_ runDirectory: String, keep: Int, protecting: Set<String> = []) {
        for old in list(runDirectory).dropLast(keep) where !protecting.contains(old) {
            unlink(manifestPath(forWeights: old))
            unlink(statePath(forWeights: old))
            unlink(old)
        }
    }

    /// What interrupted writes left: temporary files, and checkpoint files without a manifest.
    /// Called by the process that holds the run directory's lock, before it writes anything.
    public static func removeLeftovers(_ runDirectory: String) -> [String] {
        let fm = FileManager.default
        var removed: [String] = []
        for dir in [runDirectory, "\(runDirectory)/checkpoints"] {
            for name in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] {
                var leftover = name.hasPrefix(DurableFile.temporaryPrefix)
                if dir.hasSuffix("/checkpoints"), name.hasPrefix("step-"), !name.hasSuffix(".manifest.json") {
                    let stem = name.hasSuffix(".state.safetensors") ? String(name.dropLast(".state.safetensors".count))
                        : String(name.dropLast(".safetensors".count))
                    leftover = leftover || (!fm.fileExists(atPath: "\(dir)/\(stem).manifest.json") && !isLegacy("\(dir)/\(stem).safetensors"))
                }
                if leftover, unlink("\(dir)/\(name)") == 0 { removed.append(name) }
            }
        }
        return removed
    }
}

extension ParameterArena {
    /// The first gradient tensor in backward order (the reverse of the layout's) holding NaN or
    /// infinity, with the count.
    public func firstNonFiniteGradient() -> (name: String, count: Int)? {
        for (name, _, values) in namedValues(from: gradients).reversed() {
            let bad = values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
            if bad > 0 { return (name, bad) }
        }
        return nil
    }

    /// The first parameter tensor holding NaN or infinity, with the count of such values.
    public func firstNonFinite() -> (name: String, count: Int)? {
        for (name, _, values) in namedValues() {
            let bad = values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
            if bad > 0 { return (name, bad) }
        }
        return nil
    }

    /// Every parameter from the tensor of the same name in `file` (shapes must match), then
    /// `requireFinite`.
    public func load(from file: SafetensorsFile, source: String) throws {
        for ref in layout.entries {
            let tensor = try file.tensor(ref.name, in: source)
            do {
                try assign(ref.name, shape: tensor.shape, floats: try tensor.floats())
            } catch let error as SeqTrainError {
                throw SeqTrainError("\(source): \(error.message)")
            }
        }
        try requireFinite(source: source)
    }

    /// The error for outputs that overflow although every weight is finite (weights near FLT_MAX).
    public func overflowError(source: String, what: String) -> SeqTrainError {
        let largest = values.array.reduce(Float(0)) { max($0, abs($1)) }
        return SeqTrainError("\(source): \(what) is not finite (NaN or infinite): the weights, up to \(largest) in magnitude, overflow float32 arithmetic; the checkpoint cannot be used (train again, or use an earlier checkpoint)")
    }

    /// Refuses weights that are not all finite: loss and samples from them would be meaningless.
    public func requireFinite(source: String) throws {
        if let (name, count) = firstNonFinite() {
            throw SeqTrainError("\(source): tensor \(name) holds \(count) NaN or infinite value(s); the checkpoint cannot be used (train again, or resume from an earlier checkpoint)")
        }
    }
}

/// A trained char-LM loaded back from a checkpoint, for `sample` and `eval`.
public struct LoadedCharLM {
    public let model: CharLanguageModel
    public let vocabulary: Vocabulary
    public let config: ExperimentConfig
    public let metadata: [String: String]
    public let path: String

    public init(path given: String) throws {
        let file: SafetensorsFile
        (path, file) = try Checkpoint.resolve(given)
        metadata = file.metadata
        if let kind = metadata["seqtrain.kind"], kind != "char_lm" {
            throw SeqTrainError("\(path): a model.kind = \"\(kind)\" checkpoint; seqtrain sample works on char_lm checkpoints")
        }
        guard metadata["seqtrain.kind"] == "char_lm", let vocabularyText = metadata["seqtrain.vocabulary"],
              let configText = metadata["seqtrain.config"] else {
            throw SeqTrainError("\(path): not a seqtrain char-LM checkpoint (its __metadata__ lacks seqtrain.kind, seqtrain.vocabulary or seqtrain.config)")
        }
        config = try ExperimentConfig.parse(configText, source: "\(path) (seqtrain.config)")
        guard config.kind == "char_lm" else {
            throw SeqTrainError("\(path): its seqtrain.kind is char_lm but its seqtrain.config says model.kind = \"\(config.kind)\"; the checkpoint is damaged")
        }
        vocabulary = try Vocabulary(Array(vocabularyText.unicodeScalars), source: "\(path): seqtrain.vocabulary")
        guard vocabulary.count >= 2 else { throw SeqTrainError("\(path): seqtrain.vocabulary has \(vocabulary.count) character(s); a char LM has at least 2") }
        let (settings, count, stored) = (config, vocabulary.count, file.storedValues)
        model = try building(path) { try CharLMTask.makeModel(settings, vocabulary: count, storedValues: stored) }
        try model.parameters.load(from: file, source: path)
    }
}
