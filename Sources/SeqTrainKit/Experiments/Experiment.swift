import Foundation

/// Every model's contract. A model's `forward` (over its own inputs: ids, features and lengths, a
/// latent) keeps `output`; the experiment evaluates its loss on it (Losses/) and hands the gradient
/// of the loss sum to `backward`, which adds every weight gradient into the parameter arena and, as
/// each layer finishes, tells the arena (`ParameterArena.finishGradients`), so the trainer sums
/// those gradients over replicas while backward goes on.
public protocol TrainableModel: AnyObject {
    var parameters: ParameterArena { get }
    /// The last forward's output, what the loss reads (logits, forecasts, a reconstruction).
    var output: FloatBuffer { get }
    /// Back-propagates dOutput (the shape of `output`), the gradient of the loss sum.
    func backward(_ dOutput: UnsafePointer<Float>)
    /// The recurrent networks inside, whose long backward passes let MPI progress (`progressHook`).
    var recurrentStacks: [RecurrentNetwork] { get }
    /// The last forward's output of every layer, in forward order (`--debug` names the first one
    /// holding NaN or infinity).
    var forwardOutputs: [(name: String, values: FloatBuffer)] { get }
}

extension CharLanguageModel: TrainableModel {
    public var output: FloatBuffer { logits }
    public var recurrentStacks: [RecurrentNetwork] { body.recurrentNetworks }
    public var forwardOutputs: [(name: String, values: FloatBuffer)] {
        [("embedding output", embeddedOutput)] + body.layerOutputs + [("head output (logits)", logits)]
    }
}

/// Lanes whose recurrent state carries from batch to batch (stateful kinds): saved in checkpoints
/// and restored by `--resume`, lanes in global order.
public struct CarriedState {
    /// (L_i, rows, H_i) of this rank's lanes, for each recurrent entry that carries a state.
    public let states: [RecurrentState]
    /// This rank's lanes of the global batch.
    public let rows: Range<Int>
    /// Lanes of the global batch.
    public let lanes: Int
}

/// Validation figures, computed from totals summed over the ranks.
public struct ValidationResult {
    /// The validation loss (feeds reduce-on-plateau).
    public var loss: Double
    /// Named metrics for metrics.jsonl, in order (`val_accuracy`, `val_macro_f1`, ...).
    public var metrics: [(name: String, value: Double)] = []
    /// A report for the end of training (per-class table, confusion matrix), printed and saved.
    public var report: String?
    /// Files of the report (name in the run directory, contents).
    public var reportFiles: [(name: String, contents: String)] = []
    /// The training doctor's findings from these figures (printed once each, as warnings).
    public var warnings: [String] = []

    public init(loss: Double, metrics: [(name: String, value: Double)] = []) {
        self.loss = loss
        self.metrics = metrics
    }
}

/// One experiment kind on one rank: its data (and this rank's share of every batch), its model, its
/// loss, its validation metrics and what its checkpoints carry to load it back. The trainer drives
/// any kind through this protocol and names none.
public protocol Experiment: AnyObject {
    var config: ExperimentConfig { get }
    var trainableModel: TrainableModel { get }
    var batchesPerEpoch: Int { get }
    /// Equal on every rank that read the same training data.
    var dataFingerprint: UInt64 { get }
    /// What to tell a rank whose data differs from rank 0's.
    var dataMismatchHint: String { get }
    /// What throughput counts ("tokens", "samples").
    var unitName: String { get }
    /// One line about the data and the model for the start of training.
    var summary: String { get }
    /// Called when epoch `epoch` starts (fresh or resumed): resets carried state.
    func beginEpoch(_ epoch: Int)
    /// Forward and backward of this rank's share of global batch k: adds ∂(loss sum)/∂θ to the
    /// gradient arena (which learns which parts are final as backward runs:
    /// `ParameterArena.onGradientsFinished`); returns this rank's loss sum and count, and the units
    /// processed. `lap(phase)` is called as each phase ends ("data", "forward", "backward": loss and backward),
    /// for the timeline.
    func accumulateGradient(batch k: Int, epoch: Int, step: Int,
                            lap: (String) -> Void) throws -> (LossTotal, units: Int)
    /// Metrics of the training loss alone (the char LM's perplexity), for metrics.jsonl.
    func trainingMetrics(loss: Double) -> [(name: String, value: Double)]
    /// The names `validationMetrics` returns, so lines between validations carry them as null.
    var validationMetricNames: [String] { get }
    var hasValidation: Bool { get }
    /// This rank's share of the validation totals; the same count on every rank (summed over ranks).
    func validationTotals() throws -> [Double]
    /// Loss and metrics from the totals of all ranks.
    func validationMetrics(_ totals: [Double]) -> ValidationResult
    /// Carried per-lane state, for stateful kinds.
    var carriedState: CarriedState? { get }
    /// What a checkpoint needs beyond the weights and the config to load this kind back.
    func checkpointMetadata() -> [String: String]
    /// Test hook: "step lane first-input last-input" lines of the last batch's rows.
    func traceLines(step: Int) -> String
    /// The training doctor's warnings about this experiment's data and model (probably wrong, not
    /// certainly: what is certainly wrong is refused when the experiment is made).
    var diagnoses: [String] { get }
    /// The doctor's findings from a validation during training that depend on how far the run has
    /// got (a classifier at chance level, posterior collapse); each kind's rule reports once.
    func diagnose(_ result: ValidationResult, step: Int, totalSteps: Int) -> [DoctorFinding]
}

extension Experiment {
    public func trainingMetrics(loss: Double) -> [(name: String, value: Double)] { [] }
    public var carriedState: CarriedState? { nil }
    public func traceLines(step: Int) -> String { "" }
    public var diagnoses: [String] { [] }
    public func diagnose(_ result: ValidationResult, step: Int, totalSteps: Int) -> [DoctorFinding] { [] }

    public func accumulateGradient(batch k: Int, epoch: Int, step: Int) throws -> (LossTotal, units: Int) {
        try accumulateGradient(batch: k, epoch: epoch, step: step, lap: { _ in })
    }
}

/// `training.batch_size` and the rows of every global batch replica `rank` of `world` owns.
func batchShare(_ config: ExperimentConfig, rank: Int, world: Int) throws -> (batchSize: Int, rows: Range<Int>) {
    let batchSize = config.integer("training.batch_size")
    try MemoryCheck.requireMatrixDimensions([(batchSize, "training.batch_size")])
    try requireEvenShare(batchSize: batchSize, world: world)
    return (batchSize, shard(batchSize, rank: rank, world: world))
}

/// The global batch must split evenly over the replicas (ranks × worker threads per rank).
public func requireEvenShare(batchSize: Int, world: Int) throws {
    guard batchSize % world == 0 else {
        throw SeqTrainError("training.batch_size = \(batchSize) does not divide among \(world) replicas (ranks × training.workers); use a multiple of \(world) (it is the global batch, and each replica takes an equal share), or set training.workers")
    }
}

/// The config and one metadata entry of a checkpoint of `kind`, with the consistency checks every
/// loader makes.
func loadKindMetadata(_ file: SafetensorsFile, path: String, kind: String, key: String) throws -> (ExperimentConfig, String) {
    guard let configText = file.metadata["seqtrain.config"], let value = file.metadata[key] else {
        throw SeqTrainError("\(path): not a seqtrain \(kind) checkpoint (its __metadata__ lacks seqtrain.config or \(key))")
    }
    let config = try ExperimentConfig.parse(configText, source: "\(path) (seqtrain.config)")
    guard config.kind == kind, file.metadata["seqtrain.kind"] == kind else {
        throw SeqTrainError("\(path): its seqtrain.kind (\(file.metadata["seqtrain.kind"] ?? "none")) and the model.kind of its seqtrain.config (\(config.kind)) are not both \(kind); the checkpoint is damaged")
    }
    return (config, value)
}

/// A JSON entry of a checkpoint's metadata decoded, or an error naming the checkpoint and the key.
func decodeStored<T: Decodable>(_ type: T.Type, _ json: String, key: String, path: String) throws -> T {
    do {
        return try JSONDecoder().decode(type, from: Data(json.utf8))
    } catch {
        throw SeqTrainError("\(path): \(key) is not valid: \(error)")
    }
}

/// A loader's model built from its checkpoint's config, its errors prefixed with the checkpoint.
func building<Model>(_ path: String, _ make: () throws -> Model) throws -> Model {
    do {
        return try make()
    } catch let error as SeqTrainError {
        throw SeqTrainError("\(path): \(error.message)")
    }
}

/// Checkpoint metadata as JSON, keys sorted so the same state writes the same bytes.
func metadataJSON<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
}

/// What `seqtrain eval` reports: ordered fields for `--json` and a sentence for people.
public struct EvaluationReport {
    public var fields: [(name: String, value: Any)]
    public var text: String
    public init(fields: [(name: String, value: Any)], text: String) {
        self.fields = fields
        self.text = text
    }

    public var json: String {
        "{" + fields.map { name, value in
            let encoded: String
            switch value {
            case let d as Double: encoded = d.isFinite ? "\(d)" : "null"
            case let i as Int: encoded = "\(i)"
            case let s as String: encoded = jsonString(s)
            case let list as [[Int]]: encoded = "[" + list.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }.joined(separator: ", ") + "]"
            case let list as [String]: encoded = "[" + list.map(jsonString).joined(separator: ", ") + "]"
            default: encoded = jsonString("\(value)")
            }
            return "\(jsonString(name)): \(encoded)"
        }.joined(separator: ", ") + "}"
    }
}

/// A JSON string literal.
/// A JSON object of strings, keys sorted.
func jsonObject(_ values: [String: String]) -> String {
    "{" + values.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)): \(jsonString($0.value))" }.joined(separator: ", ") + "}"
}

func jsonString(_ s: String) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
    return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
}

/// One entry of the registry: a kind's name, its config keys, and how to make it, evaluate its
/// checkpoints and predict with them. Adding a kind is adding its files and one entry here.
public struct ExperimentKind {
    public let name: String
    public let summary: String
    public let configKeys: [ConfigKey]
    /// The experiment on rank `rank` of `world`, its data loaded and its model built.
    public let make: (_ config: ExperimentConfig, _ rank: Int, _ world: Int) throws -> Experiment
    /// `seqtrain eval CHECKPOINT --data ... [--labels ...]`.
    public let evaluate: (_ checkpoint: String, _ data: [String], _ labels: [String]) throws -> EvaluationReport
    /// `seqtrain predict CHECKPOINT --data ... --out FILE`: returns a summary line.
    public let predict: ((_ checkpoint: String, _ data: [String], _ out: String) throws -> String)?
    /// `seqtrain encode CHECKPOINT --data ... --out FILE`: every sample's latent vector.
    public var encode: ((_ checkpoint: String, _ data: [String], _ out: String) throws -> String)? = nil
    /// `seqtrain score CHECKPOINT --data ... --out FILE`: every sample's reconstruction error.
    public var score: ((_ checkpoint: String, _ data: [String], _ out: String) throws -> String)? = nil
    /// `seqtrain generate CHECKPOINT ...`: the generated sequences, one per line.
    public var generate: ((_ checkpoint: String, _ request: GenerationRequest) throws -> String)? = nil
    /// `seqtrain forecast CHECKPOINT --data ... --steps N [--out FILE]`.
    public var forecast: ((_ checkpoint: String, _ data: [String], _ steps: Int, _ out: String?) throws -> String)? = nil

    /// The kinds that have the command `name` ("encode", "score", "generate", "forecast"), for messages.
    public static func offering(_ command: String) -> [String] {
        ExperimentRegistry.kinds.filter { kind in
            switch command {
            case "encode": return kind.encode != nil
            case "score": return kind.score != nil
            case "generate": return kind.generate != nil
            case "forecast": return kind.forecast != nil
            case "predict": return kind.predict != nil
            default: return false
            }
        }.map(\.name)
    }
}

/// What `seqtrain generate` asks of a sequence generator.
public struct GenerationRequest {
    /// Where the latent vectors come from.
    public enum Source {
        /// Encode these texts (one sequence per line) and decode them again: reconstruction.
        case text([String])
        /// Decode the latent vectors of a .npy file of (N, Z).
        case latents(String)
        /// Draw N latent vectors from the prior N(0, I) (variational models).
        case prior(Int)
    }
    public var source: Source
    /// 0: the most likely token at every step; above 0, draws from softmax(logits / T).
    public var temperature: Double
    /// Tokens at most per sequence, the end token excluded.
    public var maxLength: Int
    public var seed: UInt64

    public init(source: Source, temperature: Double, maxLength: Int, seed: UInt64) {
        self.source = source
        self.temperature = temperature
        self.maxLength = maxLength
        self.seed = seed
    }
}

public enum ExperimentRegistry {
    public static let kinds: [ExperimentKind] = [
        CharLMTask.kind, ClassifierExperiment.sequenceKind, ClassifierExperiment.mlpKind, AutoencoderExperiment.kind,
        Seq2SeqExperiment.kind, ForecasterExperiment.kind, TaggerExperiment.kind,
    ]

    public static func kind(named name: String) -> ExperimentKind? { kinds.first { $0.name == name } }

    /// The kind that wrote a checkpoint (its `seqtrain.kind` metadata).
    public static func kind(ofCheckpoint path: String) throws -> (kind: ExperimentKind, path: String) {
        let (resolved, file) = try Checkpoint.resolve(path)
        guard let name = file.metadata["seqtrain.kind"] else {
            throw SeqTrainError("\(resolved): not a seqtrain checkpoint (its __metadata__ has no seqtrain.kind)")
        }
        guard let kind = kind(named: name) else {
            throw SeqTrainError("\(resolved): written for model.kind = \"\(name)\", which this seqtrain does not know (it knows \(kinds.map(\.name).joined(separator: ", ")))")
        }
        return (kind, resolved)
    }
}
