import ArgumentParser
import Foundation
import SeqTrainKit

/// The kind a checkpoint was trained as, and its implementation of `command`; an error naming the
/// kinds that have it otherwise.
func kindCommand<T>(_ command: String, checkpoint: String, _ pick: (ExperimentKind) -> T?) throws -> (T, String) {
    let (kind, path) = try ExperimentRegistry.kind(ofCheckpoint: checkpoint)
    guard let action = pick(kind) else {
        let kinds = ExperimentKind.offering(command).map { "\"\($0)\"" }.joined(separator: ", ")
        throw SeqTrainError("\(path): a model.kind = \"\(kind.name)\" checkpoint; seqtrain \(command) works on checkpoints of model.kind \(kinds)")
    }
    return (action, path)
}

struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The latent vector of every sample, from an autoencoder checkpoint (read as its training read data).")

    @Argument(help: "A checkpoint (.safetensors) or a run directory (its newest checkpoint).")
    var checkpoint: String

    @Option(help: "Input files or globs (repeatable): .npy, .csv or .tsv sequences, like the training inputs.")
    var data: [String] = []

    @Option(help: "Output: FILE.npy (N, Z) float32, or FILE.csv (a header, then the sample and its Z values).")
    var out: String

    func validate() throws {
        guard !data.isEmpty else { throw ValidationError("--data is required: the sequences to encode") }
    }

    func run() throws {
        try reporting {
            let (encode, path) = try kindCommand("encode", checkpoint: checkpoint) { $0.encode }
            print(try encode(path, data, out))
        }
    }
}

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every sample's reconstruction error from an autoencoder checkpoint: an anomaly score (mean squared error over its valid steps, in the data's units).")

    @Argument(help: "A checkpoint (.safetensors) or a run directory (its newest checkpoint).")
    var checkpoint: String

    @Option(help: "Input files or globs (repeatable): .npy, .csv or .tsv sequences, like the training inputs.")
    var data: [String] = []

    @Option(help: "Output: FILE.csv (sample,reconstruction_mse) or FILE.npy (N,) float32.")
    var out: String

    func validate() throws {
        guard !data.isEmpty else { throw ValidationError("--data is required: the sequences to score") }
    }

    func run() throws {
        try reporting {
            let (score, path) = try kindCommand("score", checkpoint: checkpoint) { $0.score }
            print(try score(path, data, out))
        }
    }
}
