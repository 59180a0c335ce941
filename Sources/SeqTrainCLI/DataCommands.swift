import ArgumentParser
import Foundation
import SeqTrainKit

/// `seqtrain data curves|letters|series|tags`: the seeded labelled sets the default configs and tests use.
struct MakeData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Write a seeded, labelled data set (no download needed).",
        subcommands: [Curves.self, Letters.self, Series.self, Tags.self])

    struct Curves: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Curves with several overlapping shape labels (rising, falling, convex, concave, oscillating, spike, plateau).",
            discussion: "Writes DIR/inputs.npy (N, L) float32 and DIR/labels.npy (N, 7) of 0/1; the label names, in column order, are \(SyntheticSets.curveLabels.joined(separator: ", ")).")

        @Option(help: "Samples.") var count = 2000
        @Option(help: "Points per curve.") var length = 1500
        @Option(help: "Output directory (created).") var out: String
        @Option(help: "Seed: the same seed writes the same files.") var seed: UInt64 = 1
        @Flag(help: "Samples keep 60 to 100% of the points; the rest are trailing NaN.") var variableLength = false

        func validate() throws {
            guard (1...10_000_000).contains(count) else { throw ValidationError("--count must be 1 to 10000000, got \(count)") }
            guard (8...1_000_000).contains(length) else { throw ValidationError("--length must be 8 to 1000000, got \(length)") }
            guard count.multipliedReportingOverflow(by: length).partialValue <= 500_000_000, !count.multipliedReportingOverflow(by: length).overflow else {
                throw ValidationError("--count × --length = \(count) × \(length) is more than 500 million points")
            }
        }

        func run() throws {
            try reporting {
                try makeDirectory(out)
                let (inputs, labels) = SyntheticSets.curves(count: count, length: length, seed: seed, variableLength: variableLength)
                try NumpyArray(floats: inputs, shape: [count, length]).write(to: "\(out)/inputs.npy")
                try NumpyArray(floats: labels, shape: [count, SyntheticSets.curveLabels.count]).write(to: "\(out)/labels.npy")
                print("\(out)/inputs.npy (\(count), \(length)) and \(out)/labels.npy (\(count), \(SyntheticSets.curveLabels.count)): \(SyntheticSets.curveLabels.joined(separator: ", "))")
            }
        }
    }

    struct Letters: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A stand-in for handwritten characters: 28×28 grey images of 36 glyphs (0-9, A-Z), unbalanced classes.",
            discussion: "Writes DIR/images.npy (N, 28, 28) uint8 and DIR/labels.csv (one glyph name per line, no header).")

        @Option(help: "Samples.") var count = 6000
        @Option(help: "Output directory (created).") var out: String
        @Option(help: "Seed: the same seed writes the same files.") var seed: UInt64 = 1

        func validate() throws {
            guard (1...200_000).contains(count) else { throw ValidationError("--count must be 1 to 200000, got \(count)") }
        }

        func run() throws {
            try reporting {
                try makeDirectory(out)
                let (pixels, labels) = SyntheticSets.letters(count: count, seed: seed)
                try NumpyArray(shape: [count, 28, 28], dtype: .uint8, data: Data(pixels)).write(to: "\(out)/images.npy")
                do {
                    try (labels.joined(separator: "\n") + "\n").write(toFile: "\(out)/labels.csv", atomically: true, encoding: .utf8)
                } catch {
                    throw SeqTrainError("\(out)/labels.csv: cannot write: \(describeFileError(error))")
                }
                print("\(out)/images.npy (\(count), 28, 28) and \(out)/labels.csv (\(count) labels of 36 classes)")
            }
        }
    }
}

extension MakeData {
    struct Series: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Noisy seasonal series with trend, for forecasting: columns that share a component, each with a level, a trend, a season and a slower one of 7 seasons, and AR(1) noise.",
            discussion: "Writes DIR/series.csv (a header y0, y1, ...; one row per step) and DIR/series.npy (T, F) float32.")

        @Option(help: "Steps.") var length = 4000
        @Option(help: "Columns.") var features = 2
        @Option(help: "Steps of a season.") var season = 24
        @Option(help: "Output directory (created).") var out: String
        @Option(help: "Seed: the same seed writes the same files.") var seed: UInt64 = 1

        func validate() throws {
            guard (2...10_000_000).contains(length) else { throw ValidationError("--length must be 2 to 10000000, got \(length)") }
            guard (1...64).contains(features) else { throw ValidationError("--features must be 1 to 64, got \(features)") }
            guard (1...1_000_000).contains(season) else { throw ValidationError("--season must be 1 to 1000000, got \(season)") }
        }

        func run() throws {
            try reporting {
                try makeDirectory(out)
                let values = SyntheticSets.series(length: length, features: features, season: season, seed: seed)
                try NumpyArray(floats: values, shape: [length, features]).write(to: "\(out)/series.npy")
                var text = (0..<features).map { "y\($0)" }.joined(separator: ",") + "\n"
                for t in 0..<length { text += (0..<features).map { String(values[t * features + $0]) }.joined(separator: ",") + "\n" }
                try DurableFile.write(Data(text.utf8), to: "\(out)/series.csv")
                print("\(out)/series.csv and \(out)/series.npy (\(length), \(features)): a season of \(season) steps, columns \((0..<features).map { "y\($0)" }.joined(separator: ", "))")
            }
        }
    }
}

func makeDirectory(_ path: String) throws {
    do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
        throw SeqTrainError("\(path): cannot create the directory: \(describeFileError(error))")
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Probabilities and predicted labels of a classifier or tagger checkpoint for new data, read as its "
            + "training read it.")

    @OptionGroup var input: CheckpointAndData

    @Option(help: "Output: FILE.npy (probabilities; predictions in FILE.labels.npy) or FILE.csv (classifiers only).")
    var out: String

    func run() throws {
        try reporting {
            try OutputFiles.refuseRunFile(out)
            let (predict, path) = try kindCommand("predict", checkpoint: input.source.resolved()) { $0.predict }
            print(try predict(path, input.data, out))
        }
    }
}
