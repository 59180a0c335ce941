/// A loss summed over the counted elements, and how many were counted (for cross-entropy with class
/// weights, the sum of the targets' weights, as PyTorch's mean). The mean is `sum / count`.
///
/// Losses write the gradient of the *sum*; the trainer scales the gradient arena by 1/count of the
/// global batch, so N ranks and one process compute the same gradient.
public struct LossTotal: Equatable {
    public var sum: Double
    public var count: Double
    public init(sum: Double = 0, count: Double = 0) { self.sum = sum; self.count = count }
    public var mean: Double { count > 0 ? sum / count : 0 }
    public static func + (a: LossTotal, b: LossTotal) -> LossTotal { LossTotal(sum: a.sum + b.sum, count: a.count + b.count) }
}

/// A 0/1 weight per row (a (batch, time) position) saying whether it is counted; nil counts all.
public typealias RowMask = UnsafePointer<Float>?
