import Foundation
import XCTest
import SeqTrainKit

/// The forecaster kind: its preprocessing and baselines against hand-computed values, and through
/// the binary learning generated series (windows and stateful), eval, forecast and the refusals.
final class ForecasterTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func seqtrain(_ arguments: [String], timeout: Double = 300) throws -> MultiRankTests.Run {
        try MultiRankTests.execute([MultiRankTests.binary] + arguments, timeout: timeout)
    }

    /// First differences and standardization, and their undoing.
    func testDifferencesAndStandardizationRoundTrip() {
        let series = TimeSeries(values: [1, 10, 2, 20, 4, 40, 7, 70], steps: 4, columns: ["a", "b"], source: "test")
        let plain = SeriesPreprocessing(columns: ["a", "b"], targets: [0, 1], header: false, difference: false, mean: [2, 20], std: [2, 10])
        XCTAssertEqual(plain.transform(series), [-0.5, -1, 0, 0, 1, 2, 2.5, 5])
        XCTAssertEqual(plain.restore(2.5, column: 0), 7)
        let differenced = SeriesPreprocessing(columns: ["a", "b"], targets: [1], header: false, difference: true, mean: nil, std: nil)
        XCTAssertEqual(differenced.transform(series), [1, 10, 2, 20, 3, 30])
        XCTAssertEqual(differenced.offset, 1)
    }

    /// The naive and seasonal-naive figures of the rolling-origin evaluation, by hand: levels
    /// 1, 2, 4, 7, 11, 16, 22, 29, the last half held out, horizon 2, season 2.
    func testBaselinesOfTheRollingOriginEvaluation() throws {
        let levels: [Float] = [1, 2, 4, 7, 11, 16, 22, 29]
        let series = TimeSeries(values: levels, steps: 8, columns: ["y"], source: "test")
        let preprocessing = SeriesPreprocessing(columns: ["y"], targets: [0], header: false, difference: false, mean: nil, std: nil)
        let config = try ExperimentConfig.parse("""
            [model]
            kind = "forecaster"
            horizon = 2
            [training]
            look_back = 2
            [eval]
            season = 2
            """, source: "test")
        let model = SeriesForecaster(features: 1, hiddenSize: 3, targets: 1, horizon: 2)
        model.parameters.initialize(seed: 1)
        let totals = try ForecasterExperiment.measure([series], transformed: [preprocessing.transform(series)], trainingSteps: [4], model: model,
                                                      config: config, preprocessing: preprocessing)
        // Origins 3..6 (the last training step, then each held-out step with a next one); targets
        // inside the series: (3→4, 3→5), (4→5, 4→6), (5→6, 5→7), (6→7).
        let pairs = [(3, 4), (3, 5), (4, 5), (4, 6), (5, 6), (5, 7), (6, 7)]
        XCTAssertEqual(totals.count, Double(pairs.count))
        let naive = pairs.map { Double(levels[$0.0] - levels[$0.1]) }
        XCTAssertEqual(totals.naiveMAE, naive.map(abs).reduce(0, +) / 7, accuracy: 1e-9)
        XCTAssertEqual(totals.naiveRMSE, (naive.map { $0 * $0 }.reduce(0, +) / 7).squareRoot(), accuracy: 1e-9)
        // One season (2 steps) back from each target: target − 2 for the first and second step ahead.
        let seasonal = pairs.map { Double(levels[$0.1 - 2] - levels[$0.1]) }
        XCTAssertEqual(totals.seasonalMAE, seasonal.map(abs).reduce(0, +) / 7, accuracy: 1e-9)
        XCTAssertEqual(totals.seasonalRMSE, (seasonal.map { $0 * $0 }.reduce(0, +) / 7).squareRoot(), accuracy: 1e-9)
    }

    func config(_ extra: String = "") throws -> String {
        try """
            [job]
            name = "fc"
            seed = 2
            run_dir = "\(dir)/run"
            [data]
            inputs = ["\(dir)/series/series.csv"]
            header = true
            [model]
            kind = "forecaster"
            hidden = 48
            horizon = 12
            [training]
            batch_size = 16
            epochs = 4
            look_back = 48
            seq_len = 40
            eval_every = 0
            [eval]
            season = 24
            [optimizer]
            lr = 0.003
            \(extra)
            """.write(toFile: "\(dir)/fc.toml", atomically: true, encoding: .utf8)
        return "\(dir)/fc.toml"
    }

    func lastMetrics() throws -> [String: Any] {
        let lines = try String(contentsOfFile: "\(dir)/run/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(lines.last!.utf8)) as? [String: Any])
    }

    /// Windows and stateful lanes, levels and differences: each beats the naive last value on the
    /// held-out part; eval gives the logged figures; forecast rolls forward in the data's units.
    func testForecasterBeatsTheNaiveForecastAndForecasts() throws {
        let made = try seqtrain(["data", "series", "--out", "\(dir)/series", "--length", "3000", "--seed", "4"])
        XCTAssertEqual(made.status, 0, made.errors)
        let variants: [(String, [String])] = [
            ("windows", []),
            ("stateful", ["training.stateful=true", "training.epochs=40"]),
            ("stateful differences", ["training.stateful=true", "training.epochs=40", "data.difference=true", "model.cell=gru"]),
            // Layer stacks: a causal conv1d under a bidirectional LSTM on windows (the window's last step
            // forecasts, so every entry may read the whole window); stateful lanes carrying the state of
            // two recurrent entries of different widths.
            ("window stack", ["model.layers=[{type = \"conv1d\", filters = 16, kernel_size = 5, padding = \"causal\", "
                                + "activation = \"relu\"}, {type = \"lstm\", hidden = 32, bidirectional = true}]"]),
            ("stateful stack", ["training.stateful=true", "training.epochs=40",
                                "model.layers=[{type = \"lstm\", hidden = 32}, {type = \"dense\", units = 24, "
                                    + "activation = \"tanh\"}, {type = \"gru\", hidden = 24, layers = 2}]"]),
        ]
        for (name, sets) in variants {
            let run = try seqtrain(["train", try config(), "--quiet", "--overwrite"] + sets.flatMap { ["--set", $0] })
            XCTAssertEqual(run.status, 0, "\(name): \(run.errors)")
            let last = try lastMetrics()
            let rmse = try XCTUnwrap(last["val_rmse"] as? Double), naive = try XCTUnwrap(last["val_naive_rmse"] as? Double)
            print(String(format: "forecaster test (%@): held-out RMSE %.4f, naive last value %.4f, seasonal naive %.4f", name, rmse, naive,
                         last["val_seasonal_naive_rmse"] as? Double ?? .nan))
            XCTAssertLessThan(rmse, naive, "\(name): beats the naive last-value forecast")
            let eval = try seqtrain(["eval", "\(dir)/run", "--data", "\(dir)/series/series.csv", "--json"])
            XCTAssertEqual(eval.status, 0, eval.errors)
            let fields = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(eval.output.utf8)) as? [String: Any])
            for (key, logged) in [("rmse", "val_rmse"), ("mae", "val_mae"), ("naive_rmse", "val_naive_rmse"), ("loss", "val_loss")] {
                let a = try XCTUnwrap(fields[key] as? Double), b = try XCTUnwrap(last[logged] as? Double)
                XCTAssertEqual(a, b, accuracy: 1e-5 * abs(b), "\(name): eval's \(key) is the logged \(logged)")
            }
        }
        // The stateful stack's checkpoint carries each recurrent entry's lane state: (L_k, lanes, H_k).
        let (weights, _) = try Checkpoint.resolve("\(dir)/run")
        let state = try SafetensorsFile(contentsOf: Checkpoint.statePath(forWeights: weights))
        XCTAssertEqual(try state.tensor("lanes.hidden", in: "state").shape, [1, 16, 32])
        XCTAssertEqual(try state.tensor("lanes.1.hidden", in: "state").shape, [2, 16, 24])
        // The last model (the stateful stack): 30 steps ahead, starting near the last known values.
        let forecast = try seqtrain(["forecast", "\(dir)/run", "--data", "\(dir)/series/series.csv", "--steps", "30", "--out", "\(dir)/f.csv"])
        XCTAssertEqual(forecast.status, 0, forecast.errors)
        let rows = try String(contentsOfFile: "\(dir)/f.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(rows.count, 31)
        XCTAssertEqual(rows[0], "step,y0,y1")
        let known = SyntheticSets.series(length: 3000, features: 2, season: 24, seed: 4)
        let first = rows[1].split(separator: ",").dropFirst().map { Double($0)! }
        for f in 0..<2 { XCTAssertEqual(first[f], Double(known[2999 * 2 + f]), accuracy: 2.5, "the first step continues the series") }
        let npy = try seqtrain(["forecast", "\(dir)/run", "--data", "\(dir)/series/series.csv", "--steps", "30", "--out", "\(dir)/f.npy"])
        XCTAssertEqual(npy.status, 0, npy.errors)
        let array = try NumpyArray(contentsOf: "\(dir)/f.npy")
        XCTAssertEqual(array.shape, [30, 2])
        XCTAssertEqual(Double(array.floats()[0]), first[0], accuracy: 1e-5)
    }

    /// Timestamps of every style: their regular step and the dates after the last one; irregular
    /// steps give none; disorder and mixed styles are errors naming the step.
    func testTimeColumnsStepAndNameTheFuture() throws {
        func clock(_ stamps: [String]) throws -> SeriesClock { try SeriesClock(stamps, path: "t.csv") }
        XCTAssertEqual(try clock(["1960-11", "1960-12"]).future(1), "1961-01")
        XCTAssertEqual(try clock(["1960-10", "1961-01"]).future(2), "1961-07", "quarterly")
        XCTAssertEqual(try clock(["2023-12-31", "2024-01-31"]).future(1), "2024-02-29", "monthly at the month's end")
        XCTAssertEqual(try clock(["2024-02-27", "2024-02-28"]).future(2), "2024-03-01", "daily, through a leap day")
        XCTAssertEqual(try clock(["1999-12-31T22:00", "1999-12-31T23:00"]).future(1), "2000-01-01T00:00")
        XCTAssertEqual(try clock(["2024-03-01 00:00:00", "2024-03-01 00:00:30"]).future(3), "2024-03-01 00:02:00")
        XCTAssertEqual(try clock(["1949", "1950"]).future(11), "1961")
        XCTAssertNil(try clock(["1", "2", "4"]).future(1), "an irregular step names no future")
        XCTAssertNil(try clock(["\(Int64.min)", "\(Int64.max)"]).future(1), "a step beyond Int64 is not a trap")
        XCTAssertNil(try clock(["\(Int64.max - 1)", "\(Int64.max)"]).future(5), "nor is a future beyond it")
        XCTAssertThrowsError(try clock(["1960-01", "1960-03", "1960-02"])) { error in
            XCTAssertTrue("\(error)".contains("t.csv, step 2: \"1960-02\" does not come after \"1960-03\""), "\(error)")
        }
        XCTAssertThrowsError(try clock(["1960-01", "1960-02-01"])) { error in
            let expected = "step 1: \"1960-02-01\" is not a timestamp like the first one"
            XCTAssertTrue("\(error)".contains(expected), "\(error)")
        }
        XCTAssertThrowsError(try clock(["1960-02-30"]))
        XCTAssertThrowsError(try clock(["Jan 1960"]))
    }

    /// The airline layout: a date column and a text column beside the values. Only the columns the
    /// model reads are parsed, and forecast rows carry the next months.
    func testAForecastFromACSVWithADateColumnCarriesTheNextDates() throws {
        try FileManager.default.createDirectory(atPath: "\(dir)/series", withIntermediateDirectories: true)
        var text = "month,passengers,note\n"
        for t in 0..<144 {
            let value = 100 + 2 * Double(t) + 20 * sin(2 * Double.pi * Double(t) / 12)
            text += String(format: "%04d-%02d,%.1f,row %d\n", 1949 + t / 12, t % 12 + 1, value, t)
        }
        try text.write(toFile: "\(dir)/series/series.csv", atomically: true, encoding: .utf8)
        let config = try config()
        let sets = ["data.columns=[\"passengers\"]", "data.time_column=month", "training.look_back=24",
                    "eval.season=12",
                    "training.epochs=2"]
        let run = try seqtrain(["train", config, "--quiet"] + sets.flatMap { ["--set", $0] })
        XCTAssertEqual(run.status, 0, run.errors)
        let forecast = try seqtrain(["forecast", "\(dir)/run", "--data", "\(dir)/series/series.csv", "--steps", "14"])
        XCTAssertEqual(forecast.status, 0, forecast.errors)
        let rows = forecast.output.split(separator: "\n").filter { !$0.hasPrefix("seqtrain:") }
        XCTAssertEqual(rows.first, "step,month,passengers")
        XCTAssertEqual(rows.dropFirst().map { String($0.split(separator: ",")[1]) },
                       (1...12).map { String(format: "1961-%02d", $0) } + ["1962-01", "1962-02"])
        // Without data.columns the text column is read as values, and the error says what to do.
        let all = try seqtrain(["train", config, "--quiet", "--overwrite", "--set", "data.time_column=month"])
        XCTAssertEqual(all.status, 2)
        XCTAssertTrue(all.errors.contains("column 2 (note): \"row 0\" is not a number; the columns the model reads "
            + "(data.columns) hold numbers, other columns are not read"), all.errors)
    }

    func testImpossibleRequestsAreRefusedNamingTheKey() throws {
        XCTAssertEqual(try seqtrain(["data", "series", "--out", "\(dir)/series", "--length", "400"]).status, 0)
        XCTAssertEqual(try seqtrain(["data", "series", "--out", "\(dir)/other", "--length", "300"]).status, 0)
        try "y0,y1\n1,2\nnan,3\n4,5\n".write(toFile: "\(dir)/gap.csv", atomically: true, encoding: .utf8)
        let path = try config()
        let cases: [([String], String)] = [
            (["data.inputs=[]"], "data.inputs: no series files"),
            (["training.stateful=true", "data.inputs=[\"\(dir)/series/series.csv\", \"\(dir)/other/series.csv\"]"],
             "training.stateful = true reads one series, and data.inputs holds 2"),
            (["data.target_columns=[\"y7\"]"], "data.target_columns: \"y7\" is not one of the columns the model reads (y0, y1)"),
            (["data.columns=[\"z\"]"], "data.columns: \(dir)/series/series.csv has no column \"z\""),
            (["data.inputs=\(dir)/gap.csv"], "\(dir)/gap.csv: step 1, column y0: missing (NaN)"),
            (["training.look_back=1000"], "no window of training.look_back = 1000 steps and model.horizon = 12 fits"),
            (["training.stateful=true", "training.batch_size=400"], "too few for 400 lanes (training.batch_size)"),
            (["training.stateful=true", "model.layers=[{type = \"lstm\", hidden = 4}, "
                + "{type = \"gru\", hidden = 4, bidirectional = true}]"],
             "model.layers[1]: a stateful forecaster (training.stateful = true) reads its series in order"),
            (["training.stateful=true", "model.layers=[{type = \"conv1d\", filters = 4, kernel_size = 3, "
                + "padding = \"causal\"}, {type = \"lstm\", hidden = 4}]"],
             "model.layers[0]: a stateful forecaster (training.stateful = true) reads its series in order"),
            (["model.layers=[{type = \"conv1d\", filters = 4, kernel_size = 3}, {type = \"lstm\", hidden = 4}]"],
             "model.layers[0] (conv1d): padding = \"valid\" drops 2 steps, so its outputs no longer line up"),
            (["model.output_activation=sigmoid"], "model.output_activation"),
        ]
        for (sets, message) in cases {
            let result = try seqtrain(["train", path, "--quiet"] + sets.flatMap { ["--set", $0] })
            XCTAssertEqual(result.status, 2, "\(sets)")
            XCTAssertTrue(result.errors.contains(message), "\(sets): \(result.errors)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/run/metrics.jsonl"))
        }
        // A model that reads a column it does not forecast cannot roll forward on its own forecasts.
        let partial = try seqtrain(["train", path, "--quiet", "--set", "data.target_columns=[\"y0\"]", "--set", "training.epochs=1"])
        XCTAssertEqual(partial.status, 0, partial.errors)
        let refused = try seqtrain(["forecast", "\(dir)/run", "--data", "\(dir)/series/series.csv", "--steps", "3"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.errors.contains("the model reads y1, which it does not forecast"), refused.errors)
        let wrong = try seqtrain(["forecast", "\(dir)/run", "--data", "\(dir)/gap.csv", "--steps", "3"])
        XCTAssertTrue(wrong.errors.contains("missing (NaN)") || wrong.errors.contains("does not forecast"), wrong.errors)
        // Without a header columns are known by position: a file with another column count is refused.
        let lines = try String(contentsOfFile: "\(dir)/series/series.csv", encoding: .utf8).split(separator: "\n").dropFirst()
        try (lines.map { $0 + "\n" }.joined()).write(toFile: "\(dir)/bare.csv", atomically: true, encoding: .utf8)
        try (lines.map { $0 + ",7\n" }.joined()).write(toFile: "\(dir)/wider.csv", atomically: true, encoding: .utf8)
        let bare = try seqtrain(["train", path, "--quiet", "--overwrite", "--set", "data.inputs=\(dir)/bare.csv", "--set", "data.header=false",
                                 "--set", "training.epochs=1"])
        XCTAssertEqual(bare.status, 0, bare.errors)
        let wider = try seqtrain(["eval", "\(dir)/run", "--data", "\(dir)/wider.csv"])
        XCTAssertEqual(wider.status, 2, wider.output)
        XCTAssertTrue(wider.errors.contains("wider.csv has 3 column(s), the model was trained on files of 2"), wider.errors)
        XCTAssertEqual(try seqtrain(["eval", "\(dir)/run", "--data", "\(dir)/bare.csv"]).status, 0)
    }
}
