/// How a parameter starts, as PyTorch's default for the module that owns it.
public enum Initialization: Equatable {
    case uniform(bound: Float)
    case normal(std: Float)
    case zeros
}

/// A named tensor in the arena: its PyTorch state_dict name, shape, and where its floats live.
public struct ParameterRef: Equatable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// The order and shapes of a model's parameters, built by its layers before any memory exists.
public struct ParameterLayout {
    public private(set) var entries: [ParameterRef] = []
    public private(set) var initializations: [Initialization] = []
    public private(set) var totalCount = 0

    public init() {}

    /// Adds a parameter; offsets are 16-float aligned so every view starts on a 64-byte boundary.
    public mutating func add(_ name: String, shape: [Int], initialization: Initialization) -> ParameterRef {
        precondition(!entries.contains { $0.name == name }, "duplicate parameter name \(name)")
        let ref = ParameterRef(name: name, shape: shape, offset: totalCount)
        entries.append(ref)
        initializations.append(initialization)
        totalCount += (ref.count + 15) / 16 * 16
        return ref
    }

    public func named(_ name: String) -> ParameterRef? { entries.first { $0.name == name } }

    /// A description of names and shapes, equal on every rank that built the same model.
    public var signature: String { entries.map { "\($0.name)\($0.shape)" }.joined(separator: ";") }
}

/// One flat float32 buffer for all parameters and one of the same layout for their gradients.
/// Optimizers, clipping and the gradient all-reduce walk them as single buffers; layers read
/// named views through the `ParameterRef`s they registered.
public final class ParameterArena {
    public let layout: ParameterLayout
    /// (totalCount). The worker threads of one process share one (`useValues`); layers read it
    /// through `value(_:)` at every call, never keeping a pointer.
    public private(set) var values: FloatBuffer
    public let gradients: FloatBuffer  // (totalCount), same offsets as `values`

    public init(_ layout: ParameterLayout) {
        self.layout = layout
        values = FloatBuffer(count: layout.totalCount)
        gradients = FloatBuffer(count: layout.totalCount)
    }

    public var count: Int { layout.totalCount }

    /// Reads and updates `shared` from now on (the parameters the worker threads of a process share).
    public func useValues(_ shared: FloatBuffer) {
        precondition(shared.count == values.count, "shared parameters of another layout")
        values = shared
    }

    @inline(__always) public func value(_ ref: ParameterRef) -> UnsafeMutablePointer<Float> { values.pointer + ref.offset }
    @inline(__always) public func gradient(_ ref: ParameterRef) -> UnsafeMutablePointer<Float> { gradients.pointer + ref.offset }

    public func zeroGradients() { gradients.zero() }

    /// Told, during backward, each offset from which the gradients are final (backward runs in
    /// reverse layout order), so they can be summed over replicas while backward goes on
    /// (GradientReducer). Set by the trainer for a run; nil: nobody listens.
    public var onGradientsFinished: ((Int) -> Void)?

    /// A layer has written its last gradient: every gradient from `ref` on is final. Layers whose
    /// parameters receive gradients more than once in a pass (a shared embedding) do not call it;
    /// the reducer takes what is left when backward ends.
    @inline(__always) public func finishGradients(from ref: ParameterRef) { onGradientsFinished?(ref.offset) }

    /// PyTorch's default initialization, drawn from (seed, parameter index, element index).
    public func initialize(seed: UInt64) {
        let random = CounterRandom(seed: seed, purpose: .initialization)
        for (k, ref) in layout.entries.enumerated() {
            let p = value(ref)
            switch layout.initializations[k] {
            case .zeros:
                p.update(repeating: 0, count: ref.count)
            case .uniform(let bound):
                for i in 0..<ref.count {
                    p[i] = (2 * random.uniform(stream: UInt64(k), index: UInt64(i)) - 1) * bound
                }
            case .normal(let std):
                for i in 0..<ref.count { p[i] = std * random.normal(stream: UInt64(k), index: UInt64(i)) }
            }
        }
    }

    /// The named tensors as (name, shape, floats), in layout order: what a checkpoint stores.
    public func namedValues(from buffer: FloatBuffer? = nil) -> [(name: String, shape: [Int], values: [Float])] {
        let source = buffer ?? values
        return layout.entries.map { ref in
            (ref.name, ref.shape, Array(UnsafeBufferPointer(start: source.pointer + ref.offset, count: ref.count)))
        }
    }

    /// Copies `floats` into the parameter `name` after checking its shape.
    public func assign(_ name: String, shape: [Int], floats: [Float], into buffer: FloatBuffer? = nil) throws {
        guard let ref = layout.named(name) else {
            throw SeqTrainError("unexpected tensor \(name): this model has no such parameter (it has \(layout.entries.map(\.name).joined(separator: ", ")))")
        }
        guard ref.shape == shape, floats.count == ref.count else {
            throw SeqTrainError("tensor \(name) has shape \(shape), the model expects \(ref.shape)")
        }
        let target = (buffer ?? values).pointer + ref.offset
        floats.withUnsafeBufferPointer { target.update(from: $0.baseAddress!, count: ref.count) }
    }
}
