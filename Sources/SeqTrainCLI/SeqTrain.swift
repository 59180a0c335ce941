import ArgumentParser
import Foundation
import SeqTrainKit

@main
struct SeqTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seqtrain",
        abstract: "Train LSTM, GRU and MLP models on CPUs and CPU clusters.",
        subcommands: [Bench.self])
}
