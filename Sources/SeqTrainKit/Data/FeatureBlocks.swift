import Foundation

/// The vector a vector model sees, made once at load from (N, T, F) sequences: the blocks of
/// `data.features` computed per sample over its valid length and concatenated in the order listed.
///
///     raw         (T·F)   the values as stored, time-major (PyTorch's x.reshape(N, -1)); padding is 0
///     rfft        (F·B)   log(1 + |rfft| / L) of each channel, the lowest B = data.rfft_bins bins
///     downsample  (F·S)   the mean of S = data.downsample segments of each channel, the segments of
///                         F.adaptive_avg_pool1d: [⌊jL/S⌋, ⌈(j+1)L/S⌉)
///     stats       (F·6)   mean, deviation (population, np.std), min, max, first, last of each channel
///
/// Every block but raw is channel-major. A single "raw" block is the identity (the reader shapes
/// the samples); any other list reads sequences first.
public struct FeatureBlocks: Equatable {
    public enum Block: String, CaseIterable {
        case raw, rfft, downsample, stats
    }

    public var blocks: [Block]
    public var rfftBins: Int
    public var segments: Int

    /// The statistics of the stats block, in their order.
    public static let statistics = ["mean", "deviation", "min", "max", "first", "last"]

    /// From the names a config or a checkpoint holds; nil when a name is unknown, repeated or absent.
    public init?(names: [String], rfftBins: Int, segments: Int) {
        let parsed = names.compactMap(Block.init(rawValue:))
        guard !parsed.isEmpty, parsed.count == names.count, Set(parsed).count == parsed.count else { return nil }
        blocks = parsed
        self.rfftBins = rfftBins
        self.segments = segments
    }

    /// True when the samples are used as read (no block computes anything).
    public var isIdentity: Bool { blocks == [.raw] }

    /// Features per sample for (T, F) samples, checked: nil when the product overflows.
    public func width(steps: Int, channels: Int) -> Int? {
        var total = 0
        for block in blocks {
            let per: Int
            switch block {
            case .raw: per = steps
            case .rfft: per = rfftBins
            case .downsample: per = segments
            case .stats: per = Self.statistics.count
            }
            let (size, overflow) = per.multipliedReportingOverflow(by: channels)
            guard !overflow, case let (sum, over) = total.addingReportingOverflow(size), !over else { return nil }
            total = sum
        }
        return total
    }

    /// (N, T, F) sequences → (N, 1, width) vectors. The caller has checked `width` and the memory.
    public func apply(_ data: LabelledData) -> LabelledData {
        if isIdentity { return data }
        let parts = blocks.map { block -> LabelledData in
            switch block {
            case .raw:
                return LabelledData(inputs: data.inputs, count: data.count, steps: 1,
                                    features: data.steps * data.features,
                                    lengths: [Int](repeating: 1, count: data.count), labels: nil, source: data.source)
            case .rfft: return SpectralFeatures.logMagnitude(data, bins: rfftBins)
            case .downsample: return Self.segmentMeans(data, segments: segments)
            case .stats: return Self.channelStatistics(data)
            }
        }
        if parts.count == 1 {
            var only = parts[0]
            only.labels = data.labels
            return only
        }
        let width = parts.reduce(0) { $0 + $1.features }
        var out = [Float]()                        // (N, width)
        out.reserveCapacity(data.count * width)
        for s in 0..<data.count {
            for part in parts { out += part.inputs[(s * part.features)..<((s + 1) * part.features)] }
        }
        return LabelledData(inputs: out, count: data.count, steps: 1, features: width,
                            lengths: [Int](repeating: 1, count: data.count), labels: data.labels, source: data.source)
    }

    /// (N, T, F) → (N, 1, F·S): each channel's mean over S adaptive-average-pooling windows of its
    /// valid length (windows overlap by a step when S does not divide L, and repeat a step when L < S).
    static func segmentMeans(_ data: LabelledData, segments S: Int) -> LabelledData {
        let n = data.count, T = data.steps, F = data.features
        var out = [Float](repeating: 0, count: n * F * S)   // (N, F, S)
        for s in 0..<n {
            let length = data.lengths[s]
            for j in 0..<S {
                let start = j * length / S, end = ((j + 1) * length + S - 1) / S
                for f in 0..<F {
                    var sum = 0.0
                    for t in start..<end { sum += Double(data.inputs[(s * T + t) * F + f]) }
                    out[(s * F + f) * S + j] = Float(sum / Double(end - start))
                }
            }
        }
        return LabelledData(inputs: out, count: n, steps: 1, features: F * S, lengths: [Int](repeating: 1, count: n),
                            labels: nil, source: data.source)
    }

    /// (N, T, F) → (N, 1, F·6): `statistics` of each channel over its valid length.
    static func channelStatistics(_ data: LabelledData) -> LabelledData {
        let n = data.count, T = data.steps, F = data.features, K = statistics.count
        var out = [Float](repeating: 0, count: n * F * K)   // (N, F, 6)
        for s in 0..<n {
            let length = data.lengths[s]
            for f in 0..<F {
                func value(_ t: Int) -> Double { Double(data.inputs[(s * T + t) * F + f]) }
                var sum = 0.0, low = Double.infinity, high = -Double.infinity
                for t in 0..<length {
                    let x = value(t)
                    sum += x
                    low = min(low, x)
                    high = max(high, x)
                }
                let mean = sum / Double(length)
                var squares = 0.0
                for t in 0..<length { squares += (value(t) - mean) * (value(t) - mean) }
                let row = [mean, (squares / Double(length)).squareRoot(), low, high, value(0), value(length - 1)]
                for (k, x) in row.enumerated() { out[(s * F + f) * K + k] = Float(x) }
            }
        }
        return LabelledData(inputs: out, count: n, steps: 1, features: F * K, lengths: [Int](repeating: 1, count: n),
                            labels: nil, source: data.source)
    }
}
