import Foundation

/// Seeded labelled data sets that ship with every checkout as code, so the default configs and the
/// tests run with no download. The same seed gives the same files on any machine.
public enum SyntheticSets {
    /// The shape labels of `curves`, in column order.
    public static let curveLabels = ["rising", "falling", "convex", "concave", "oscillating", "spike", "plateau"]

    /// Labelled curves of `length` points with several overlapping shape labels: a level of 5, a
    /// rising or falling trend (or neither), a convex or concave bend (or neither), an oscillation,
    /// a narrow spike and a raised plateau, each present or not, plus noise. With `variableLength`,
    /// a sample keeps 60 to 100% of the points and the rest are NaN (the UCR archive's convention).
    /// Returns inputs (N, length) and 0/1 labels (N, 7).
    public static func curves(count: Int, length: Int, seed: UInt64, variableLength: Bool = false) -> (inputs: [Float], labels: [Float]) {
        let random = CounterRandom(seed: seed, purpose: .synthetic)
        let C = curveLabels.count
        var inputs = [Float](repeating: .nan, count: count * length)
        var labels = [Float](repeating: 0, count: count * C)
        for i in 0..<count {
            var draw: UInt64 = 0
            func u() -> Double { draw += 1; return Double(random.uniform(stream: UInt64(i), index: draw)) }
            func normal() -> Double { draw += 1; return Double(random.normal(stream: UInt64(i), index: draw)) }
            let trend = u(), bend = u()
            let slope = trend < 0.35 ? 1.5 + u() : trend < 0.7 ? -(1.5 + u()) : 0
            let curvature = bend < 0.3 ? 1.5 + u() : bend < 0.6 ? -(1.5 + u()) : 0
            let oscillating = u() < 0.35, spike = u() < 0.35, plateau = u() < 0.35
            let amplitude = 0.4 + 0.4 * u(), frequency = 8 + 12 * u(), phase = 2 * Double.pi * u()
            let spikeAt = 0.1 + 0.8 * u(), spikeHeight = 2 + 1.5 * u()
            let plateauStart = 0.1 + 0.5 * u(), plateauWidth = 0.2 + 0.15 * u(), plateauHeight = 1 + 0.5 * u()
            let level = 5 + 0.1 * normal()
            let kept = variableLength ? max(8, Int(Double(length) * (0.6 + 0.4 * u()))) : length
            let spikeWidth = max(0.004, 2 / Double(kept))
            for j in 0..<kept {
                let t = kept > 1 ? Double(j) / Double(kept - 1) : 0
                var x = level + slope * t + curvature * 4 * (t - 0.5) * (t - 0.5)
                if oscillating { x += amplitude * sin(2 * Double.pi * frequency * t + phase) }
                if spike { x += spikeHeight * exp(-0.5 * pow((t - spikeAt) / spikeWidth, 2)) }
                if plateau && t >= plateauStart && t <= plateauStart + plateauWidth { x += plateauHeight }
                x += 0.05 * normal()
                inputs[i * length + j] = Float(x)
            }
            let present = [slope > 0, slope < 0, curvature > 0, curvature < 0, oscillating, spike, plateau]
            for (k, on) in present.enumerated() where on { labels[i * C + k] = 1 }
        }
        return (inputs, labels)
    }

    /// `count` distinct made-up words of one to four syllables (consonant-vowel, sometimes closed by
    /// a consonant), for sequence-generator tests: "tavo", "minrek", ...
    public static func words(count: Int, seed: UInt64) -> [String] {
        let random = CounterRandom(seed: seed, purpose: .synthetic)
        let consonants = Array("bdfgklmnprstvz"), vowels = Array("aeiou")
        var seen = Set<String>(), out: [String] = []
        var i: UInt64 = 0
        while out.count < count && i < UInt64(count) * 100 {
            var draw: UInt64 = 0
            func pick(_ n: Int) -> Int { draw += 1; return random.integer(below: n, stream: i, index: draw) }
            var word = ""
            for _ in 0...pick(4) {
                word.append(consonants[pick(consonants.count)])
                word.append(vowels[pick(vowels.count)])
                if pick(4) == 0 { word.append(consonants[pick(consonants.count)]) }
            }
            i += 1
            if seen.insert(word).inserted { out.append(word) }
        }
        return out
    }

    /// The names of the `letters` classes: digits, then capital letters.
    public static let letterNames = (0..<36).map { $0 < 10 ? String($0) : String(Character(Unicode.Scalar(UInt8(55 + $0)))) }

    /// A stand-in for a handwritten-characters set: 28 × 28 grey images (uint8) of 36 glyphs, each
    /// glyph a seeded set of strokes, each sample that glyph with jittered strokes, shift, thickness
    /// and noise. Classes are unbalanced (the rarest about a sixth as frequent as the most common), as
    /// real character sets are. Returns pixels (N, 28, 28) and class names (N).
    public static func letters(count: Int, seed: UInt64) -> (pixels: [UInt8], labels: [String]) {
        let side = 28
        let glyphs = CounterRandom(seed: 0x1E77E25, purpose: .synthetic)   // the glyphs are the same for every seed
        let templates: [[(Double, Double, Double, Double)]] = (0..<36).map { k in
            (0..<4).map { s in
                let w = (0..<4).map { Double(glyphs.uniform(stream: UInt64(k), index: UInt64(4 * s + $0))) * 16 + 6 }
                return (w[0], w[1], w[2], w[3])
            }
        }
        let weights = (0..<36).map { 1 / (1 + Double($0 % 36) / 7) }
        let total = weights.reduce(0, +)
        let random = CounterRandom(seed: seed, purpose: .synthetic)
        var pixels = [UInt8](repeating: 0, count: count * side * side)
        var labels: [String] = []
        for i in 0..<count {
            var draw: UInt64 = 0
            func u() -> Double { draw += 1; return Double(random.uniform(stream: UInt64(i), index: draw)) }
            func normal() -> Double { draw += 1; return Double(random.normal(stream: UInt64(i), index: draw)) }
            var pick = u() * total, k = 0
            while k < 35 && pick >= weights[k] { pick -= weights[k]; k += 1 }
            labels.append(letterNames[k])
            let dx = 4 * u() - 2, dy = 4 * u() - 2, thickness = 1.2 + u()
            let strokes = templates[k].map { s in (s.0 + dx + normal(), s.1 + dy + normal(), s.2 + dx + normal(), s.3 + dy + normal()) }
            for y in 0..<side {
                for x in 0..<side {
                    var ink = 0.0
                    for (x0, y0, x1, y1) in strokes {
                        let vx = x1 - x0, vy = y1 - y0, px = Double(x) - x0, py = Double(y) - y0
                        let along = max(0, min(1, (px * vx + py * vy) / max(vx * vx + vy * vy, 1e-9)))
                        let distance = hypot(px - along * vx, py - along * vy)
                        ink = max(ink, max(0, min(1, thickness - distance + 0.5)))
                    }
                    let value = 230 * ink + 12 * normal()
                    pixels[(i * side + y) * side + x] = UInt8(max(0, min(255, value.rounded())))
                }
            }
        }
        return (pixels, labels)
    }
}
