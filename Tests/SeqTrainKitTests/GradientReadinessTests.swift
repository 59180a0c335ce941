import Foundation
import SeqTrainKit
import XCTest

/// The early all-reduce relies on every layer telling the arena when its gradients are final
/// (`ParameterArena.finishGradients`): a part reported final must not change afterwards, and
/// reports must come in reverse layout order. Checked on one training batch of every kind and
/// stack the rank tests train, by snapshotting each reported part and comparing it with the
/// gradient at the end of backward.
final class GradientReadinessTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testNoGradientChangesAfterItsLayerReportedItFinal() throws {
        try String(repeating: "the quick brown fox jumps over the lazy dog. ", count: 30)
            .write(toFile: "\(dir)/text.txt", atomically: true, encoding: .utf8)
        let (curves, _) = SyntheticSets.curves(count: 24, length: 12, seed: 4, variableLength: true)
        try NumpyArray(floats: curves, shape: [24, 12, 1]).write(to: "\(dir)/tag-x.npy")
        let tags = curves.map { v -> Int64 in v.isNaN ? -1 : v > 0 ? 1 : 0 }
        try NumpyArray(integers: tags, shape: [24, 12]).write(to: "\(dir)/tags.npy")
        let stack = "model.layers=[{type = \"lstm\", hidden = 6}, {type = \"dense\", units = 5}, "
            + "{type = \"gru\", hidden = 4, layers = 2}]"
        let tagger = "model.layers=[{type = \"conv1d\", filters = 3, kernel_size = 3, padding = \"causal\"}, "
            + "{type = \"gru\", hidden = 4, layers = 2, bidirectional = true}]"
        let encoder = "model.encoder=[{type = \"conv1d\", filters = 3, kernel_size = 3, padding = \"same\"}, "
            + "{type = \"gru\", hidden = 4, layers = 2, bidirectional = true}]"
        var cases = try ClassifierCases.write(in: dir) + SequenceKindCases.write(in: dir)
        cases += [("char-lm-stack", cases[0].config, ["model.kind=char_lm", "data.paths=\(dir)/text.txt",
                                                      "model.embedding=4", "training.seq_len=8", stack]),
                  ("tagger-stack", cases[0].config, ["model.kind=sequence_tagger", "data.inputs=\(dir)/tag-x.npy",
                                                     "data.labels=\(dir)/tags.npy", tagger]),
                  ("seq2seq-stack", cases[0].config, ["model.kind=seq2seq", "data.paths=\(dir)/words.txt",
                                                      "model.embedding=4", "model.latent=3", "model.variational=true",
                                                      "training.teacher_forcing_start=0.5", encoder,
                                                      "model.decoder=[{type = \"lstm\", hidden = 5, layers = 2}]"])]
        for (name, path, sets) in cases {
            let config = try ExperimentConfig.load(path: path, overrides: sets)
            let experiment = try XCTUnwrap(ExperimentRegistry.kind(named: config.kind)).make(config, 0, 1)
            let arena = experiment.trainableModel.parameters
            // Every report: its offset and the gradients it declared final, [offset, previous offset).
            var reports: [(offset: Int, values: [Float])] = []
            var end = arena.count
            arena.onGradientsFinished = { offset in
                XCTAssertLessThanOrEqual(offset, end, "\(name): reports come in reverse layout order")
                guard offset < end else { return }
                reports.append((offset, Array(UnsafeBufferPointer(start: arena.gradients.pointer + offset,
                                                                  count: end - offset))))
                end = offset
            }
            arena.zeroGradients()
            _ = try experiment.accumulateGradient(batch: 0, epoch: 0, step: 0)
            arena.onGradientsFinished = nil
            XCTAssertGreaterThanOrEqual(reports.count, 2, "\(name): backward reports its layers as they finish")
            for (offset, values) in reports {
                let now = Array(UnsafeBufferPointer(start: arena.gradients.pointer + offset, count: values.count))
                let changed = zip(values, now).filter { $0 != $1 }.count
                let entry = arena.layout.entries.first { $0.offset <= offset && offset < $0.offset + $0.count }
                XCTAssertEqual(changed, 0, "\(name): \(changed) gradients from \(entry?.name ?? "?") on changed "
                               + "after they were reported final")
            }
        }
    }
}
