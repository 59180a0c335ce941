import Foundation
import XCTest
import SeqTrainKit

final class ScheduleTests: XCTestCase {
    func testWarmupThenCosineToTheMinimum() {
        var s = LearningRateSchedule(kind: .cosine, base: 1)
        s.warmupSteps = 4
        s.minimum = 0.1
        s.totalSteps = 14
        XCTAssertEqual(s.rate(step: 0), 0.25, accuracy: 1e-12)
        XCTAssertEqual(s.rate(step: 3), 1, accuracy: 1e-12)
        XCTAssertEqual(s.rate(step: 9), 0.1 + 0.9 * 0.5, accuracy: 1e-12)  // half way through the cosine
        XCTAssertEqual(s.rate(step: 14), 0.1, accuracy: 1e-12)
    }

    func testStepDecay() {
        var s = LearningRateSchedule(kind: .step, base: 0.8)
        s.stepSize = 3
        s.gamma = 0.5
        XCTAssertEqual((0..<7).map { s.rate(step: $0) }, [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2])
    }

    func testReduceOnPlateauAsPyTorch() {
        var s = LearningRateSchedule(kind: .plateau, base: 1)
        s.patience = 1
        s.factor = 0.5
        s.minimum = 0.2
        for loss in [2.0, 1.5, 1.5, 1.6] { s.observe(validationLoss: loss) }  // two bad validations > patience 1
        XCTAssertEqual(s.rate(step: 0), 0.5)
        for loss in [1.7, 1.8, 1.9, 2.0, 2.1, 2.2] { s.observe(validationLoss: loss) }
        XCTAssertEqual(s.rate(step: 0), 0.2, "never below min_lr")
    }
}

final class TextDataTests: XCTestCase {
    func testInvalidUTF8NamesTheFileAndByteOffset() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data([0x61, 0x62, 0xC3, 0xA9, 0x63, 0xFF, 0x64]).write(to: URL(fileURLWithPath: "\(dir)/bad.txt"))
        XCTAssertThrowsError(try TextFiles.readUTF8("\(dir)/bad.txt")) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(dir)/bad.txt: invalid UTF-8 at byte offset 5"), "\(error)")
        }
    }

    func testGlobsExpandSortedAndOnce() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/a/b", withIntermediateDirectories: true)
        for path in ["z.txt", "a/y.txt", "a/b/x.txt", "a/b/skip.md"] { try "t".write(toFile: "\(dir)/\(path)", atomically: true, encoding: .utf8) }
        XCTAssertEqual(try TextFiles.expand(["\(dir)/**/*.txt", "\(dir)/z.txt"]), ["\(dir)/a/b/x.txt", "\(dir)/a/y.txt", "\(dir)/z.txt"])
        XCTAssertEqual(try TextFiles.expand(["\(dir)/*.txt"]), ["\(dir)/z.txt"])
        XCTAssertThrowsError(try TextFiles.expand(["\(dir)/*.csv"])) { error in
            XCTAssertTrue("\(error)".contains("\"\(dir)/*.csv\" matches no file"), "\(error)")
        }
    }

    /// A folder a glob must search and cannot read is an error, not silently skipped; one the
    /// pattern cannot reach is not opened. Root reads everything, so the test reads as nobody.
    func testAGlobThatReachesAnUnreadableFolderIsAnError() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/closed", withIntermediateDirectories: true)
        for path in ["a.txt", "closed/b.txt"] {
            try "t".write(toFile: "\(dir)/\(path)", atomically: true, encoding: .utf8)
        }
        XCTAssertEqual(chmod("\(dir)/closed", 0), 0)
        defer { chmod("\(dir)/closed", 0o755) }
        let asRoot = getuid() == 0
        if asRoot {
            XCTAssertEqual(setegid(65534), 0)
            XCTAssertEqual(seteuid(65534), 0)
        }
        defer { if asRoot { seteuid(0); setegid(0) } }
        XCTAssertThrowsError(try TextFiles.expand(["\(dir)/**/*.txt"])) { error in
            let expected = "searches \(dir)/closed, which cannot be read (Permission denied)"
            XCTAssertTrue("\(error)".contains(expected), "\(error)")
        }
        XCTAssertEqual(try TextFiles.expand(["\(dir)/*.txt"]), ["\(dir)/a.txt"])
    }

    func testUnknownCharactersAreSkippedAndCountedOrAnError() throws {
        let vocabulary = Vocabulary(building: Array("abc".unicodeScalars))
        let (ids, skipped) = try vocabulary.encode(Array("abxcx".unicodeScalars), strict: false, source: "t")
        XCTAssertEqual(ids, [0, 1, 2])
        XCTAssertEqual(skipped, 2)
        XCTAssertThrowsError(try vocabulary.encode(Array("abx".unicodeScalars), strict: true, source: "--prime")) { error in
            XCTAssertTrue("\(error)".hasPrefix("--prime: 1 characters are not in the model's vocabulary (U+78)"), "\(error)")
        }
    }
}
