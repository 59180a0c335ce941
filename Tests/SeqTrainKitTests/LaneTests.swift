import Foundation
import XCTest
import SeqTrainKit

final class LaneTests: XCTestCase {
    /// Ids that are their own positions, so every batch says where it came from.
    let positions = (0..<(1 + 4 * 23)).map { Int32($0) }

    func testLaneContinuesAcrossBatchesAndTargetsAreShiftedInputs() throws {
        let lanes = 4, steps = 5
        let batches = try CharBatches(ids: positions, lanes: lanes, steps: steps, stateful: true, seed: 0)
        XCTAssertEqual(batches.laneLength, 23)
        XCTAssertEqual(batches.batchesPerEpoch, 5)  // 4 full batches and one of 3 steps
        for k in 0..<batches.batchesPerEpoch {
            let batch = batches.batch(k, epoch: 0, rows: 0..<lanes)
            XCTAssertEqual(batch.steps, k < 4 ? 5 : 3)
            for lane in 0..<lanes {
                for t in 0..<batch.steps {
                    XCTAssertEqual(batch.inputs[lane * batch.steps + t], Int32(lane * 23 + k * steps + t))
                    XCTAssertEqual(batch.targets[lane * batch.steps + t], batch.inputs[lane * batch.steps + t] + 1)
                }
            }
        }
        // Lane j of batch k+1 starts where lane j of batch k ended.
        let first = batches.batch(1, epoch: 0, rows: 0..<lanes), second = batches.batch(2, epoch: 0, rows: 0..<lanes)
        for lane in 0..<lanes { XCTAssertEqual(second.inputs[lane * 5], first.inputs[lane * 5 + 4] + 1) }
    }

    func testEachRankSeesExactlyItsLanes() throws {
        let batches = try CharBatches(ids: positions, lanes: 4, steps: 5, stateful: true, seed: 0)
        let whole = batches.batch(2, epoch: 0, rows: 0..<4)
        for world in [1, 2, 4] {
            var seen: [Int32] = []
            for rank in 0..<world {
                let rows = shard(4, rank: rank, world: world)
                XCTAssertEqual(rows.count, 4 / world)
                seen += batches.batch(2, epoch: 0, rows: rows).inputs
            }
            XCTAssertEqual(seen, whole.inputs, "world \(world)")
        }
        XCTAssertEqual(shard(8, rank: 1, world: 2), 4..<8)
    }

    func testShuffledWindowsCoverTheTextOncePerEpochAndMaskTheShortBatch() throws {
        let batches = try CharBatches(ids: positions, lanes: 4, steps: 10, stateful: false, seed: 9)
        XCTAssertEqual(batches.windowCount, 9)
        XCTAssertEqual(batches.batchesPerEpoch, 3)
        var starts: [Int32] = []
        for k in 0..<3 {
            let batch = batches.batch(k, epoch: 0, rows: 0..<4)
            for r in 0..<4 where batch.mask == nil || batch.mask![r * 10] == 1 { starts.append(batch.inputs[r * 10]) }
            if k == 2 {
                XCTAssertEqual(batch.mask?.filter { $0 == 0 }.count, 3 * 10, "three missing rows masked")
            }
        }
        XCTAssertEqual(starts.sorted(), (0..<9).map { Int32($0 * 10) })
        let epoch1 = batches.batch(0, epoch: 1, rows: 0..<4).inputs
        XCTAssertNotEqual(epoch1, batches.batch(0, epoch: 0, rows: 0..<4).inputs, "a new order every epoch")
        XCTAssertEqual(epoch1, batches.batch(0, epoch: 1, rows: 0..<4).inputs, "the same order on every call and rank")
    }

    /// Training's carried state equals running each lane as one unbroken sequence.
    func testStateIsCarriedBetweenBatches() throws {
        let dir = try temporaryDirectory()
        let text = String((0..<400).map { i in Array("abcdefgh\n")[(i * 7 + i / 5) % 9] })
        try text.write(toFile: "\(dir)/corpus.txt", atomically: true, encoding: .utf8)
        let config = try ExperimentConfig.parse("""
            [job]
            run_dir = "\(dir)/run"
            [data]
            paths = ["\(dir)/corpus.txt"]
            validation_fraction = 0
            [model]
            embedding = 4
            hidden = 6
            layers = 2
            [training]
            batch_size = 2
            seq_len = 7
            """, source: "test.toml")
        let task = try CharLMTask(config: config)
        task.model.parameters.initialize(seed: 5)
        task.resetState()
        for k in 0..<3 { _ = try task.accumulateGradient(batch: k, epoch: 0, step: k) }
        // The same lanes, 21 characters each, in one forward from a zero state.
        let lane = task.batches.laneLength
        for j in 0..<2 {
            let ids = Array(task.batches.ids[(j * lane)..<(j * lane + 21)])
            let reference = CharLanguageModel(vocabularySize: task.model.vocabularySize,
                                              embeddingSize: task.model.embeddingSize, stack: task.model.body.specs)
            reference.parameters.values.copy(from: task.model.parameters.values.array)
            let state = reference.makeState(batch: 1)
            try reference.forward(ids: ids, batch: 1, steps: 21, state: state)
            for l in 0..<2 {
                let carried = Array(task.state.parts[0].hidden.array[((l * 2 + j) * 6)..<((l * 2 + j) * 6 + 6)])
                let whole = Array(state.parts[0].hidden.array[(l * 6)..<(l * 6 + 6)])
                assertClose(carried, whole, "lane \(j) layer \(l) h")
            }
        }
    }
}

func temporaryDirectory() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("seqtrain-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}
