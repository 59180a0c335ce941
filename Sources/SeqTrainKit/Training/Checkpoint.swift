import Foundation

/// Checkpoints in a run directory: `checkpoints/step-NNNNNNNN.safetensors` holds the weights under
/// PyTorch's state_dict names, with the vocabulary and the resolved config in `__metadata__`;
/// `step-NNNNNNNN.state.safetensors` beside it holds the rest of the training state (optimizer
/// buffers, every lane's hidden state, counters) for `--resume`.
public enum Checkpoint {
    public static func weightsPath(_ directory: String, step: Int) -> String {
        "\(directory)/checkpoints/" + String(format: "step-%08d.safetensors", step)
    }

    public static func statePath(forWeights path: String) -> String {
        String(path.dropLast(".safetensors".count)) + ".state.safetensors"
    }

    /// Weight files of a run directory, oldest first.
    public static func list(_ runDirectory: String) -> [String] {
        let dir = "\(runDirectory)/checkpoints"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasPrefix("step-") && $0.hasSuffix(".safetensors") && !$0.hasSuffix(".state.safetensors") }
            .sorted().map { "\(dir)/\($0)" }
    }

    /// A checkpoint file, or the newest one when `path` is a run directory.
    public static func resolve(_ path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw SeqTrainError("\(path): no such checkpoint file or run directory")
        }
        guard isDirectory.boolValue else { return path }
        guard let newest = list(path).last else {
            throw SeqTrainError("\(path): the run directory has no checkpoints yet (looked in \(path)/checkpoints)")
        }
        return newest
    }

    /// Deletes all but the newest `keep` checkpoints (weights and state), and state files whose
    /// weights were never written (a run killed between the two).
    public static func prune(_ runDirectory: String, keep: Int) {
        let fm = FileManager.default
        for old in list(runDirectory).dropLast(keep) {
            try? fm.removeItem(atPath: statePath(forWeights: old))
            try? fm.removeItem(atPath: old)
        }
        let dir = "\(runDirectory)/checkpoints"
        for name in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where name.hasSuffix(".state.safetensors") {
            let weights = "\(dir)/" + String(name.dropLast(".state.safetensors".count)) + ".safetensors"
            if !fm.fileExists(atPath: weights) { try? fm.removeItem(atPath: "\(dir)/\(name)") }
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
        path = try Checkpoint.resolve(given)
        let file = try SafetensorsFile(contentsOf: path)
        metadata = file.metadata
        guard metadata["seqtrain.kind"] == "char_lm", let vocabularyText = metadata["seqtrain.vocabulary"],
              let configText = metadata["seqtrain.config"] else {
            throw SeqTrainError("\(path): not a seqtrain char-LM checkpoint (its __metadata__ lacks seqtrain.kind, seqtrain.vocabulary or seqtrain.config)")
        }
        config = try ExperimentConfig.parse(configText, source: "\(path) (seqtrain.config)")
        guard config.kind == "char_lm" else {
            throw SeqTrainError("\(path): its seqtrain.kind is char_lm but its seqtrain.config says model.kind = \"\(config.kind)\"; the checkpoint is damaged")
        }
        vocabulary = Vocabulary(Array(vocabularyText.unicodeScalars))
        model = CharLanguageModel(.init(vocabularySize: vocabulary.count, embeddingSize: config.integer("model.embedding"),
                                        hiddenSize: config.integer("model.hidden"), layers: config.integer("model.layers"),
                                        cell: RecurrentCell(rawValue: config.text("model.cell"))!))
        for ref in model.parameters.layout.entries {
            let tensor = try file.tensor(ref.name, in: path)
            do {
                try model.parameters.assign(ref.name, shape: tensor.shape, floats: try tensor.floats())
            } catch let error as SeqTrainError {
                throw SeqTrainError("\(path): \(error.message)")
            }
        }
    }
}
