import Foundation
import XCTest
import SeqTrainKit

/// Checkpoints of every kind written by an older seqtrain (Fixtures/legacy, made by
/// Fixtures/make_legacy.sh with the binary of commit 8160875, before layer stacks) load in today's
/// seqtrain and evaluate to the figures that seqtrain printed for them.
final class LegacyCheckpointTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/legacy").path

    func testOlderCheckpointsOfEveryKindEvaluateToTheFiguresTheirSeqtrainPrinted() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.fixtures)
            .filter { $0.hasSuffix(".eval.json") }.map { String($0.dropLast(".eval.json".count)) }.sorted()
        let kinds = Set(try names.map { name -> String in
            let kind = try XCTUnwrap(ExperimentRegistry.kind(ofCheckpoint: "\(Self.fixtures)/\(name).safetensors"))
            return kind.kind.name
        })
        // Every kind there is has an older checkpoint here.
        XCTAssertEqual(kinds, Set(ExperimentRegistry.kinds.map(\.name)).subtracting(Self.newerKinds))
        for name in names {
            let expected = try json(Data(contentsOf: URL(fileURLWithPath: "\(Self.fixtures)/\(name).eval.json")))
            let arguments = try String(contentsOfFile: "\(Self.fixtures)/\(name).eval.args", encoding: .utf8)
                .split(whereSeparator: \.isWhitespace)
                .map { $0.hasPrefix("--") ? String($0) : "\(Self.fixtures)/\($0)" }
            let run = try MultiRankTests.execute([MultiRankTests.binary, "eval", "\(Self.fixtures)/\(name).safetensors"]
                                                    + arguments + ["--json"])
            XCTAssertEqual(run.status, 0, "\(name): \(run.errors)")
            let actual = try json(Data(run.output.utf8))
            XCTAssertEqual(Set(actual.keys), Set(expected.keys), name)
            for (key, value) in expected where key != "checkpoint" {
                if let number = value as? Double, let got = actual[key] as? Double {
                    XCTAssertEqual(got, number, accuracy: 1e-9 * max(1, abs(number)), "\(name): \(key)")
                } else {
                    XCTAssertEqual("\(actual[key] ?? "missing")", "\(value)", "\(name): \(key)")
                }
            }
        }
    }

    /// Kinds added after the fixtures were made (they have no older checkpoints).
    static let newerKinds: Set<String> = ["sequence_tagger"]

    func json(_ data: Data) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}
