import Foundation

/// `seqtrain report RUN_DIR… --out report.html`: one self-contained page (XHTML with inline SVG,
/// no script, no network) with the runs' curves overlaid, the config keys in which they differ,
/// and for classifiers the per-class table and confusion matrix of the last validation.
public enum RunReport {
    struct Run {
        let name: String
        let directory: String
        let metrics: [[String: Any]]
        let config: [(key: String, value: String)]
        let unit: String
    }

    /// Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

    public static func html(runs directories: [String]) throws -> String {
        let runs = try load(directories)
        let metrics = sweepMetrics(directories)
        var body = "<h1>Training report</h1>\n<p class=\"note\">" + escape(runs.map { "\($0.name): \($0.metrics.last.flatMap { $0["step"] as? Int } ?? 0) steps" }.joined(separator: "; ")) + "</p>\n"
        body += "<div class=\"charts\">\n" + charts(runs, metrics: metrics).map(\.svg).joined(separator: "\n")
            + "\n</div>\n"
        body += configSection(runs)
        for run in runs { body += classifierSection(run) }
        return """
            <?xml version="1.0" encoding="UTF-8"?>
            <!DOCTYPE html>
            <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
            <head>
            <meta charset="UTF-8" />
            <title>seqtrain report: \(escape(runs.map(\.name).joined(separator: ", ")))</title>
            <style>
            body { font-family: "Helvetica Neue", Arial, sans-serif; color: #222; max-width: 1400px; margin: 2em auto; padding: 0 1em; }
            h1 { font-weight: 500; } h2 { font-weight: 500; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
            .note { color: #555; } .charts { display: flex; flex-wrap: wrap; gap: 1.5em; }
            table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
            th, td { border-bottom: 1px solid #e4e4e4; padding: 0.25em 0.7em; text-align: right; }
            th:first-child, td:first-child { text-align: left; } th { font-weight: 600; }
            svg text { font-family: "Helvetica Neue", Arial, sans-serif; }
            </style>
            </head>
            <body>
            \(body)</body>
            </html>

            """
    }

    /// The charts alone, as standalone SVG files (name, contents): for a paper or a README.
    public static func svgFiles(runs directories: [String]) throws -> [(name: String, svg: String)] {
        try charts(load(directories), metrics: sweepMetrics(directories)).map {
            ($0.name + ".svg", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + $0.svg + "\n")
        }
    }

    static func load(_ directories: [String]) throws -> [Run] {
        guard !directories.isEmpty else { throw SeqTrainError("report: give one or more run directories") }
        let expanded = runDirectories(directories)
        guard !expanded.isEmpty else {
            let given = directories.joined(separator: ", ")
            throw SeqTrainError("report: \(given): the sweep has no trial with metrics yet;"
                + " give it time, or give run directories")
        }
        var names = expanded.map { path in
            path.split(separator: "/").last.map(String.init) ?? path
        }
        if Set(names).count < names.count { names = expanded }
        // Trials are named "trial NNN".
        names = zip(expanded, names).map { path, name in path.contains("/trials/") ? "trial \(name)" : name }
        return try zip(expanded, names).map { try load($0, name: $1) }
    }

    /// The run directories a report of `directories` shows: a sweep's directory stands for its
    /// trials' run directories (those that logged a step).
    public static func runDirectories(_ directories: [String]) -> [String] {
        directories.flatMap { directory -> [String] in
            guard Sweep.isSweepDirectory(directory) else { return [directory] }
            let trials = ((try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/trials")) ?? []).sorted()
            return trials.map { "\(directory)/trials/\($0)" }
                .filter { FileManager.default.fileExists(atPath: "\($0)/\(RunFiles.metricsName)") }
        }
    }

    /// The figures sweeps among `directories` rank by (other than val_loss, which the loss chart has).
    static func sweepMetrics(_ directories: [String]) -> [String] {
        var metrics: [String] = []
        for directory in directories {
            if let metric = Sweep.metric(ofSweep: directory), metric != "val_loss", !metrics.contains(metric) {
                metrics.append(metric)
            }
        }
        return metrics
    }

    static func charts(_ runs: [Run], metrics: [String] = []) -> [(name: String, svg: String)] {
        var charts: [(String, String)] = []
        for metric in metrics {
            // A sweep's ranking figure, every trial overlaid.
            charts.append((metric, chart(title: "Validation \(metric.dropFirst(metric.hasPrefix("val_") ? 4 : 0))",
                                         yLabel: metric, runs: runs, series: [(metric, "", false)])))
        }
        charts.append(("loss", chart(title: "Loss", yLabel: "loss (nats)", runs: runs, series: [("loss", "training", false), ("val_loss", "validation", true)])))
        charts.append(("learning_rate", chart(title: "Learning rate", yLabel: "learning rate", runs: runs, series: [("lr", "", false)])))
        charts.append(("gradient_norm", chart(title: "Gradient norm (before clipping)", yLabel: "global L2 norm", runs: runs, series: [("grad_norm", "", false)])))
        let units = Set(runs.map(\.unit))
        if units.count == 1, let unit = units.first {
            charts.append(("throughput", chart(title: "Throughput", yLabel: "\(unit.replacingOccurrences(of: "_", with: " ")) per second", runs: runs, series: [("\(unit)_per_s", "", false)])))
        }
        return charts
    }

    static func load(_ directory: String, name: String) throws -> Run {
        let path = "\(directory)/metrics.jsonl"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw SeqTrainError("\(path): cannot read it; give run directories (the job.run_dir of a training run)")
        }
        // A line torn by a crash is skipped, as --resume would drop it.
        let metrics = text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
            .filter { $0["step"] is Int }
        guard !metrics.isEmpty else { throw SeqTrainError("\(path): no metrics lines yet") }
        var config: [(String, String)] = []
        var section = ""
        for line in ((try? String(contentsOfFile: "\(directory)/config.toml", encoding: .utf8)) ?? "").split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("#") || trimmed.isEmpty { continue }
            if trimmed.hasPrefix("[") && trimmed.hasSuffix("]") { section = String(trimmed.dropFirst().dropLast()); continue }
            let parts = trimmed.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { config.append(("\(section).\(parts[0])", parts[1])) }
        }
        let unit = metrics.first?.keys.first { $0.hasSuffix("_per_s") }.map { String($0.dropLast("_per_s".count)) } ?? "samples"
        return Run(name: name, directory: directory, metrics: metrics, config: config, unit: unit)
    }

    // MARK: charts

    /// One line chart: for every run and every (metric, label, dashed) a path through the points
    /// where the metric is a number.
    static func chart(title: String, yLabel: String, runs: [Run], series: [(metric: String, label: String, dashed: Bool)]) -> String {
        var lines: [(name: String, colour: String, dashed: Bool, points: [(Double, Double)])] = []
        for (r, run) in runs.enumerated() {
            for s in series {
                let points = run.metrics.compactMap { m -> (Double, Double)? in
                    guard let step = m["step"] as? Int, let value = m[s.metric] as? Double, value.isFinite else { return nil }
                    // A diverged run's 1e308 would make the axis span infinite: clamp it to the chart's limit.
                    return (Double(step), min(max(value, -Self.largestPlotted), Self.largestPlotted))
                }
                guard !points.isEmpty else { continue }
                let name = [runs.count > 1 ? run.name : "", s.label].filter { !$0.isEmpty }.joined(separator: ": ")
                lines.append((name.isEmpty ? s.metric : name, palette[r % palette.count], s.dashed, points))
            }
        }
        // The legend sits in rows under the title, above the plot, so it never hides a curve.
        let width = 640.0, left = 72.0, right = 16.0, bottom = 52.0
        var legendRows: [[Int]] = [[]], rowWidth = 0.0
        let showLegend = lines.count > 1 || !(lines.first?.name ?? "").isEmpty
        if showLegend {
            for (k, line) in lines.enumerated() {
                let entry = 7.0 * Double(line.name.count) + 40
                if rowWidth + entry > width - left - right && !(legendRows.last ?? []).isEmpty { legendRows.append([]); rowWidth = 0 }
                legendRows[legendRows.count - 1].append(k)
                rowWidth += entry
            }
        }
        let top = 34.0 + (showLegend ? Double(legendRows.count) * 16 + 6 : 0), height = top + 254 + bottom
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let xs = lines.flatMap { $0.points.map(\.0) }, ys = lines.flatMap { $0.points.map(\.1) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\">\n"
        svg += "<title>\(escape(title))</title>\n"
        svg += "<text x=\"\(Int(left))\" y=\"20\" font-size=\"15\" font-weight=\"600\">\(escape(title))</text>\n"
        guard let xMin = xs.min(), let xMax = xs.max(), let yMinRaw = ys.min(), let yMaxRaw = ys.max() else {
            return svg + "<text x=\"\(Int(left))\" y=\"\(Int(top + plotHeight / 2))\" font-size=\"13\" fill=\"#777\">no data</text>\n</svg>"
        }
        let xTicks = niceTicks(xMin, xMax), yTicks = niceTicks(yMinRaw, yMaxRaw)
        let x0 = min(xTicks.first ?? xMin, xMin), x1 = max(xTicks.last ?? xMax, xMax)
        let y0 = min(yTicks.first ?? yMinRaw, yMinRaw), y1 = max(yTicks.last ?? yMaxRaw, yMaxRaw)
        func px(_ x: Double) -> Double { left + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * plotWidth }
        func py(_ y: Double) -> Double { top + plotHeight - (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5) * plotHeight }
        func f(_ v: Double) -> String { v.isFinite ? String(format: "%.1f", v) : "0" }
        // Grid, ticks and their labels.
        for t in yTicks {
            svg += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotWidth))\" y1=\"\(f(py(t)))\" y2=\"\(f(py(t)))\" stroke=\"#e8e8e8\" />\n"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(py(t) + 4))\" font-size=\"11\" text-anchor=\"end\" fill=\"#444\">\(label(t))</text>\n"
        }
        for t in xTicks {
            svg += "<line x1=\"\(f(px(t)))\" x2=\"\(f(px(t)))\" y1=\"\(f(top + plotHeight))\" y2=\"\(f(top + plotHeight + 5))\" stroke=\"#444\" />\n"
            svg += "<text x=\"\(f(px(t)))\" y=\"\(f(top + plotHeight + 18))\" font-size=\"11\" text-anchor=\"middle\" fill=\"#444\">\(label(t))</text>\n"
        }
        svg += "<line x1=\"\(f(left))\" x2=\"\(f(left))\" y1=\"\(f(top))\" y2=\"\(f(top + plotHeight))\" stroke=\"#444\" />\n"
        svg += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotWidth))\" y1=\"\(f(top + plotHeight))\" y2=\"\(f(top + plotHeight))\" stroke=\"#444\" />\n"
        svg += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 10))\" font-size=\"12\" text-anchor=\"middle\" fill=\"#222\">optimizer step</text>\n"
        svg += "<text transform=\"translate(16 \(f(top + plotHeight / 2))) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\" fill=\"#222\">\(escape(yLabel))</text>\n"
        // One path per series.
        for line in lines {
            let d = line.points.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(f(px($0.element.0))) \(f(py($0.element.1)))" }.joined(separator: " ")
            svg += "<path class=\"series\" d=\"\(d)\" fill=\"none\" stroke=\"\(line.colour)\" stroke-width=\"1.6\"\(line.dashed ? " stroke-dasharray=\"6 4\"" : "")><title>\(escape(line.name))</title></path>\n"
            if line.points.count == 1 {
                svg += "<circle cx=\"\(f(px(line.points[0].0)))\" cy=\"\(f(py(line.points[0].1)))\" r=\"3\" fill=\"\(line.colour)\" />\n"
            }
        }
        if showLegend {
            for (row, entries) in legendRows.enumerated() {
                var x = left
                let y = 40.0 + Double(row) * 16
                for k in entries {
                    let line = lines[k]
                    svg += "<line x1=\"\(f(x))\" x2=\"\(f(x + 22))\" y1=\"\(f(y - 4))\" y2=\"\(f(y - 4))\" stroke=\"\(line.colour)\" stroke-width=\"2\"\(line.dashed ? " stroke-dasharray=\"6 4\"" : "") />\n"
                    svg += "<text x=\"\(f(x + 28))\" y=\"\(f(y))\" font-size=\"11\" fill=\"#222\">\(escape(line.name))</text>\n"
                    x += 7.0 * Double(line.name.count) + 40
                }
            }
        }
        return svg + "</svg>"
    }

    /// The largest magnitude a chart plots; larger values are drawn at it.
    static let largestPlotted = 1e100

    /// Round tick values (1, 2 or 5 × 10^k apart) covering [low, high], about five of them.
    static func niceTicks(_ low: Double, _ high: Double) -> [Double] {
        guard high > low, (high - low).isFinite else { return [low] }
        let rough = (high - low) / 5
        let magnitude = pow(10, floor(log10(rough)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
        var ticks: [Double] = []
        var t = floor(low / step) * step
        while t <= high + step * 0.5 && ticks.count < 20 {
            ticks.append(t)
            t += step
        }
        return ticks
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 1e9 { return String(format: "%.1e", v) }
        if abs(v) >= 1e6 { return String(format: "%gM", (v / 1e5).rounded() / 10) }
        if abs(v) >= 1e4 { return String(format: "%gk", (v / 1e2).rounded() / 10) }
        if abs(v) < 1e-3 { return String(format: "%.1e", v) }
        return String(format: "%g", (v * 1e6).rounded() / 1e6)
    }

    // MARK: tables

    static func configSection(_ runs: [Run]) -> String {
        var keys: [String] = []
        for run in runs { for (key, _) in run.config where !keys.contains(key) { keys.append(key) } }
        func value(_ run: Run, _ key: String) -> String { run.config.first { $0.key == key }?.value ?? "" }
        var out = ""
        if runs.count > 1 {
            let differing = keys.filter { key in Set(runs.map { value($0, key) }).count > 1 }
            out += "<h2>How the runs differ</h2>\n"
            if differing.isEmpty {
                out += "<p class=\"note\">The resolved configs are the same.</p>\n"
            } else {
                out += "<table>\n<tr><th>key</th>" + runs.map { "<th>\(escape($0.name))</th>" }.joined() + "</tr>\n"
                for key in differing { out += "<tr><td>\(escape(key))</td>" + runs.map { "<td>\(escape(value($0, key)))</td>" }.joined() + "</tr>\n" }
                out += "</table>\n"
            }
        }
        for run in runs where !run.config.isEmpty {
            out += "<details><summary>Resolved config of \(escape(run.name))</summary>\n<table>\n"
            for (key, v) in run.config { out += "<tr><td>\(escape(key))</td><td>\(escape(v))</td></tr>\n" }
            out += "</table>\n</details>\n"
        }
        return out
    }

    /// The per-class table and the confusion matrix the trainer saved at the end of a classifier run.
    static func classifierSection(_ run: Run) -> String {
        var out = ""
        if let text = try? String(contentsOfFile: "\(run.directory)/per_class.csv", encoding: .utf8) {
            out += "<h3>Per class (last validation)</h3>\n" + csvTable(text, shade: false)
        }
        if let text = try? String(contentsOfFile: "\(run.directory)/confusion_matrix.csv", encoding: .utf8) {
            out += "<h3>Confusion matrix (rows: true class, columns: predicted)</h3>\n" + csvTable(text, shade: true)
        }
        return out.isEmpty ? "" : "<h2>\(escape(run.name)): classes</h2>\n" + out
    }

    static func csvTable(_ text: String, shade: Bool) -> String {
        let rows = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        guard let header = rows.first else { return "" }
        let numbers = rows.dropFirst().flatMap { $0.dropFirst().compactMap(Double.init) }.filter(\.isFinite)
        let largest = max(numbers.max() ?? 1, 1)
        var out = "<table>\n<tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
        for row in rows.dropFirst() {
            out += "<tr>" + row.enumerated().map { k, cell in
                guard shade, k > 0, let v = Double(cell), v.isFinite else { return "<td>\(escape(cell))</td>" }
                return "<td style=\"background: rgba(0, 114, 178, \(String(format: "%.2f", 0.08 + 0.6 * v / largest)))\">\(escape(cell))</td>"
            }.joined() + "</tr>\n"
        }
        return out + "</table>\n"
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
