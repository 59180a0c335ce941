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

/// The checkpoint an inference command uses: a file, or a run directory and `--checkpoint`.
struct CheckpointSource: ParsableArguments {
    @Argument(help: "A checkpoint (.safetensors) or a run directory (its best checkpoint, else its newest).")
    var checkpoint: String

    @Option(name: .customLong("checkpoint"),
            help: ArgumentHelp("Which checkpoint of a run directory: best (the default: the best validation, "
                + "checkpoint.keep_best; the newest when there is none), last (the newest), or a checkpoint file, "
                + "its name in RUN/checkpoints, or its step.", valueName: "last|best|PATH"))
    var choice: String?

    /// The checkpoint file to use; says on standard error which one a run directory gave.
    func resolved() throws -> String {
        let selected = try Checkpoint.select(checkpoint, choice: choice.map(CheckpointChoice.init))
        if let note = selected.note { writeStandardError("seqtrain: \(note)\n") }
        return selected.path
    }
}

/// The checkpoint a command uses and the data it reads, as the training read its data.
struct CheckpointAndData: ParsableArguments {
    @OptionGroup var source: CheckpointSource

    @Option(help: "Input files or globs (repeatable), in the format of the training inputs.")
    var data: [String] = []

    func validate() throws {
        guard !data.isEmpty else { throw ValidationError("--data is required: the inputs, in the format of the training inputs") }
    }
}

struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The latent vector of every sample, from an autoencoder or seq2seq checkpoint (read as its "
            + "training read data; for seq2seq, the latent means, which generate --latent decodes).")

    @OptionGroup var input: CheckpointAndData

    @Option(help: "Output: FILE.npy (N, Z) float32, or FILE.csv (a header, then the sample and its Z values).")
    var out: String

    func run() throws {
        try reporting {
            try OutputFiles.refuseRunFile(out)
            let (encode, path) = try kindCommand("encode", checkpoint: input.source.resolved()) { $0.encode }
            print(try encode(path, input.data, out))
        }
    }
}

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every sample's reconstruction error from an autoencoder checkpoint: an anomaly score (mean squared error over its valid steps, in the data's units).")

    @OptionGroup var input: CheckpointAndData

    @Option(help: "Output: FILE.csv (sample,reconstruction_mse) or FILE.npy (N,) float32.")
    var out: String

    func run() throws {
        try reporting {
            try OutputFiles.refuseRunFile(out)
            let (score, path) = try kindCommand("score", checkpoint: input.source.resolved()) { $0.score }
            print(try score(path, input.data, out))
        }
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sequences from a seq2seq checkpoint: reconstructions of given text, decodings of given latent vectors, or samples from the prior.",
        discussion: "Exactly one of --from, --latent and --prior. Temperature 0 takes the most likely token at every step; the same --seed gives the same sequences on any machine.")

    @OptionGroup var source: CheckpointSource

    @Option(help: "Text whose sequences (cut as the training text was) are encoded and generated again.")
    var from: String?

    @Option(help: "A .npy file of (N, Z) latent vectors to decode.")
    var latent: String?

    @Option(help: "Draw this many latent vectors from the prior N(0, I) (variational models).")
    var prior: Int?

    @Option(help: "Softmax temperature of every draw; 0 means the most likely token.")
    var temperature = 0.0

    @Option(help: "Tokens at most per sequence (the end token excluded).")
    var maxLength = 64

    @Option(help: "Seed of the draws.")
    var seed: UInt64 = 0

    func validate() throws {
        guard [from != nil, latent != nil, prior != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --from TEXT, --latent FILE.npy and --prior N")
        }
        if let prior { guard (1...1_000_000).contains(prior) else { throw ValidationError("--prior takes 1 to 1000000 sequences, got \(prior)") } }
        guard temperature >= 0 && temperature.isFinite else { throw ValidationError("--temperature must be 0 or more, got \(temperature)") }
        guard (1...60_000).contains(maxLength) else { throw ValidationError("--max-length takes 1 to 60000 tokens, got \(maxLength)") }
    }

    func run() throws {
        try reporting {
            let (generate, path) = try kindCommand("generate", checkpoint: source.resolved()) { $0.generate }
            let source: GenerationRequest.Source = from.map { .text([$0]) } ?? latent.map { .latents($0) } ?? .prior(prior ?? 1)
            print(try generate(path, GenerationRequest(source: source, temperature: temperature, maxLength: maxLength, seed: seed)))
        }
    }
}

struct Forecast: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forecast from a forecaster checkpoint: warm the model on the known series, then roll forward feeding its own forecasts.",
        discussion: "Every file of --data is one series, read as the training series were (columns, differences, standardization); the forecasts are in the data's own units.")

    @OptionGroup var input: CheckpointAndData

    @Option(help: "Steps to forecast past the end of each series.")
    var steps: Int

    @Option(help: "Output: FILE.csv (a header, then the step and one column per target) or FILE.npy (steps, targets); without it the CSV is printed.")
    var out: String?

    func validate() throws {
        guard (1...10_000_000).contains(steps) else { throw ValidationError("--steps takes 1 to 10000000, got \(steps)") }
    }

    func run() throws {
        try reporting {
            if let out { try OutputFiles.refuseRunFile(out) }
            let (forecast, path) = try kindCommand("forecast", checkpoint: input.source.resolved()) { $0.forecast }
            print(try forecast(path, input.data, steps, out))
        }
    }
}
