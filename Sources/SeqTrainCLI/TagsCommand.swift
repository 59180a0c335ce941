import ArgumentParser
import Foundation
import SeqTrainKit

extension MakeData {
    struct Tags: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Noisy sequences with a class at every step (low, alternating, high regimes), for the "
                + "sequence tagger.",
            discussion: "Writes DIR/inputs.npy (N, T, 2) float32 (trailing NaN past a sample's length) and "
                + "DIR/labels.npy (N, T) int64 class ids (-1 past the length); the class names, by id, are "
                + "\(SyntheticSets.tagNames.joined(separator: ", ")).")

        @Option(help: "Samples.") var count = 1000
        @Option(help: "Steps per sequence (samples keep 70 to 100% of them).") var length = 60
        @Option(help: "Output directory (created).") var out: String
        @Option(help: "Seed: the same seed writes the same files.") var seed: UInt64 = 1

        func validate() throws {
            guard (1...10_000_000).contains(count) else {
                throw ValidationError("--count must be 1 to 10000000, got \(count)")
            }
            guard (2...1_000_000).contains(length) else {
                throw ValidationError("--length must be 2 to 1000000, got \(length)")
            }
            let (cells, overflow) = count.multipliedReportingOverflow(by: length)
            guard !overflow, cells <= 200_000_000 else {
                throw ValidationError("--count × --length = \(count) × \(length) is more than 200 million steps")
            }
        }

        func run() throws {
            try reporting {
                try makeDirectory(out)
                let (inputs, labels) = SyntheticSets.tags(count: count, length: length, seed: seed)
                try NumpyArray(floats: inputs, shape: [count, length, 2]).write(to: "\(out)/inputs.npy")
                try NumpyArray(integers: labels, shape: [count, length]).write(to: "\(out)/labels.npy")
                print("\(out)/inputs.npy (\(count), \(length), 2) and \(out)/labels.npy (\(count), \(length)): "
                    + "class ids of " + SyntheticSets.tagNames.joined(separator: ", "))
            }
        }
    }
}
