import Foundation
import LVDFormats
import LVDRuntime

/// A denoising scheduler: the timesteps of a run and one update per step (diffusers'
/// `set_timesteps` + `step`). A sampling loop iterates `timesteps` and calls `step` with the
/// model's output for each, so it can report progress and stop between steps.
public protocol Scheduler: AnyObject {
    var timesteps: [Int] { get }
    /// The sample for the next step from the model output at step `index` (0-based).
    func step(_ modelOutput: Tensor, index: Int, sample: Tensor) throws(TensorError) -> Tensor
}

/// scheduler_config.json, read as diffusers' `from_config` does: unknown keys ignored, missing
/// keys take the target class's defaults, unsupported features refused by name.
public struct SchedulerConfiguration: Equatable, Sendable {
    public var className: String
    public var numTrainTimesteps = 1000
    public var betaStart = 0.0001
    public var betaEnd = 0.02
    public var betaSchedule = "linear"
    public var trainedBetas: [Double]?
    public var predictionType = "epsilon"
    public var timestepSpacing: String
    public var stepsOffset = 0
    public var clipSample = true
    public var clipSampleRange = 1.0
    public var setAlphaToOne = true
    // DPM-Solver++
    public var solverOrder = 2
    public var algorithmType = "dpmsolver++"
    public var solverType = "midpoint"
    public var lowerOrderFinal = true
    public var eulerAtFinal = false
    public var finalSigmasType = "zero"

    static let classes = ["DDIMScheduler", "DPMSolverMultistepScheduler"]

    /// `className` overrides the file's `_class_name` (the reference builds DPM-Solver++ from the
    /// DDIM config the checkpoints ship).
    public init(json: JSONObject, className override: String? = nil, file: String = "scheduler_config.json") throws(ModelError) {
        func fail(_ key: String, _ reason: String) -> ModelError { ModelError(file: file, reason: "\(key): \(reason)") }
        guard let name = override ?? json["_class_name"]?.stringValue else { throw fail("_class_name", "missing") }
        guard Self.classes.contains(name) else { throw fail("_class_name", "unknown scheduler '\(name)' (known: \(Self.classes.joined(separator: ", ")))") }
        className = name
        let dpm = name == "DPMSolverMultistepScheduler"
        // diffusers' own defaults differ per class.
        timestepSpacing = dpm ? "linspace" : "leading"
        clipSample = !dpm
        setAlphaToOne = !dpm
        func number(_ key: String) throws(ModelError) -> Double? {
            guard let value = json[key], value != .null else { return nil }
            guard let n = value.numberValue else { throw fail(key, "must be a number, got \(value.serialized())") }
            return n
        }
        func string(_ key: String, _ allowed: [String]) throws(ModelError) -> String? {
            guard let value = json[key], value != .null else { return nil }
            guard let s = value.stringValue, allowed.contains(s) else {
                throw fail(key, "must be one of \(allowed.joined(separator: ", ")), got \(value.serialized())")
            }
            return s
        }
        func bool(_ key: String) throws(ModelError) -> Bool? {
            guard let value = json[key], value != .null else { return nil }
            guard let b = value.boolValue else { throw fail(key, "must be true or false, got \(value.serialized())") }
            return b
        }
        if let n = try number("num_train_timesteps") {
            guard n >= 2, n <= 100_000, n.rounded() == n else { throw fail("num_train_timesteps", "must be an integer in 2…100000, got \(n)") }
            numTrainTimesteps = Int(n)
        }
        betaStart = try number("beta_start") ?? betaStart
        betaEnd = try number("beta_end") ?? betaEnd
        guard betaStart > 0, betaEnd > betaStart, betaEnd < 1 else {
            throw fail("beta_start", "needs 0 < beta_start (\(betaStart)) < beta_end (\(betaEnd)) < 1")
        }
        betaSchedule = try string("beta_schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"]) ?? betaSchedule
        if let betas = json["trained_betas"], betas != .null {
            guard let list = betas.arrayValue?.compactMap(\.numberValue), list.count == betas.arrayValue?.count, list.count == numTrainTimesteps else {
                throw fail("trained_betas", "must be null or \(numTrainTimesteps) numbers")
            }
            trainedBetas = list
        }
        predictionType = try string("prediction_type", ["epsilon", "v_prediction", "sample"]) ?? predictionType
        timestepSpacing = try string("timestep_spacing", ["linspace", "leading", "trailing"]) ?? timestepSpacing
        if let n = try number("steps_offset") { stepsOffset = Int(n) }
        clipSample = try bool("clip_sample") ?? clipSample
        clipSampleRange = try number("clip_sample_range") ?? clipSampleRange
        setAlphaToOne = try bool("set_alpha_to_one") ?? setAlphaToOne
        if try bool("thresholding") == true { throw fail("thresholding", "dynamic thresholding is not supported") }
        if try bool("use_karras_sigmas") == true { throw fail("use_karras_sigmas", "Karras sigmas are not supported") }
        if let n = try number("solver_order") {
            guard n == 1 || n == 2 else { throw fail("solver_order", "must be 1 or 2, got \(n)") }
            solverOrder = Int(n)
        }
        algorithmType = try string("algorithm_type", dpm ? ["dpmsolver++"] : ["dpmsolver++", "dpmsolver", "sde-dpmsolver++"]) ?? algorithmType
        solverType = try string("solver_type", dpm ? ["midpoint"] : ["midpoint", "heun"]) ?? solverType
        lowerOrderFinal = try bool("lower_order_final") ?? lowerOrderFinal
        eulerAtFinal = try bool("euler_at_final") ?? eulerAtFinal
        finalSigmasType = try string("final_sigmas_type", ["zero", "sigma_min"]) ?? finalSigmasType
    }

    /// ᾱ_t for every training timestep, in double precision.
    public var alphasCumprod: [Double] {
        let n = numTrainTimesteps
        let betas: [Double]
        if let trainedBetas {
            betas = trainedBetas
        } else {
            switch betaSchedule {
            case "scaled_linear":
                let a = betaStart.squareRoot(), b = betaEnd.squareRoot()
                betas = (0..<n).map { let v = a + Double($0) * (b - a) / Double(n - 1); return v * v }
            case "squaredcos_cap_v2":
                func alphaBar(_ t: Double) -> Double { let c = cos((t + 0.008) / 1.008 * .pi / 2); return c * c }
                betas = (0..<n).map { Swift.min(1 - alphaBar(Double($0 + 1) / Double(n)) / alphaBar(Double($0) / Double(n)), 0.999) }
            default:
                betas = (0..<n).map { betaStart + Double($0) * (betaEnd - betaStart) / Double(n - 1) }
            }
        }
        var product = 1.0
        return betas.map { product *= 1 - $0; return product }
    }

    /// `n` inference timesteps (plus one more with `extra`, the form DPM-Solver uses before
    /// dropping the last), descending.
    func timesteps(_ n: Int, dpm: Bool) -> [Int] {
        let last = numTrainTimesteps - 1
        switch timestepSpacing {
        case "linspace":
            let count = dpm ? n + 1 : n
            let values = (0..<count).map { (Double($0) * Double(last) / Double(Swift.max(count - 1, 1))).rounded(.toNearestOrEven) }
            let descending = values.reversed().map { Int($0) }
            return dpm ? Array(descending.dropLast()) : descending
        case "leading":
            if dpm {
                let ratio = last / (n + 1)
                return Array((0...n).map { $0 * ratio + stepsOffset }.reversed().dropLast())
            }
            let ratio = numTrainTimesteps / n
            return (0..<n).map { $0 * ratio + stepsOffset }.reversed()
        default: // trailing
            let ratio = Double(numTrainTimesteps) / Double(n)
            return (0..<n).map { Int((Double(numTrainTimesteps) - Double($0) * ratio).rounded(.toNearestOrEven)) - 1 }
        }
    }

    /// The scheduler for `steps` inference steps.
    public func makeScheduler(steps: Int) throws(ModelError) -> Scheduler {
        guard steps >= 1, steps <= numTrainTimesteps else {
            throw ModelError(file: "scheduler", reason: "steps \(steps) must be in 1…\(numTrainTimesteps)")
        }
        return className == "DDIMScheduler" ? DDIMScheduler(self, steps: steps) : DPMSolverMultistepScheduler(self, steps: steps)
    }
}

/// diffusers' DDIMScheduler (scheduling_ddim.py) with eta = 0; no thresholding.
public final class DDIMScheduler: Scheduler {
    public let timesteps: [Int]
    let configuration: SchedulerConfiguration
    let alphasCumprod: [Double]
    let finalAlphaCumprod: Double
    let stride: Int

    init(_ config: SchedulerConfiguration, steps: Int) {
        configuration = config
        alphasCumprod = config.alphasCumprod
        finalAlphaCumprod = config.setAlphaToOne ? 1 : alphasCumprod[0]
        timesteps = config.timesteps(steps, dpm: false)
        stride = config.numTrainTimesteps / steps
    }

    public func step(_ output: Tensor, index: Int, sample: Tensor) throws(TensorError) -> Tensor {
        let t = timesteps[index], previous = t - stride
        let alpha = alphasCumprod[t], alphaPrevious = previous >= 0 ? alphasCumprod[previous] : finalAlphaCumprod
        let (a, b) = (Float(alpha.squareRoot()), Float((1 - alpha).squareRoot()))
        var x0: Tensor, epsilon: Tensor
        switch configuration.predictionType {
        case "sample":
            x0 = output
            epsilon = try (sample - output * a) / b
        case "v_prediction":
            x0 = try sample * a - output * b
            epsilon = try output * a + sample * b
        default:
            x0 = try (sample - output * b) / a
            epsilon = output
        }
        if configuration.clipSample { // clamp x0 to ±range: min(max(x0, −r), r) = −max(−max(x0, −r), −r)
            let r = Float(configuration.clipSampleRange)
            x0 = try Tensor.maximum(Tensor.maximum(x0, Tensor.scalar(-r)) * -1, Tensor.scalar(-r)) * -1
        }
        return try x0 * Float(alphaPrevious.squareRoot()) + epsilon * Float((1 - alphaPrevious).squareRoot())
    }
}

/// diffusers' DPMSolverMultistepScheduler, DPM-Solver++ of order ≤ 2 with the midpoint
/// second-order update (METHODS.md §3.3); first order at the start and, per diffusers'
/// rule, at the final step; final sigma zero (returns x0) or sigma_min.
public final class DPMSolverMultistepScheduler: Scheduler {
    public let timesteps: [Int]
    let configuration: SchedulerConfiguration
    /// σ per step, plus the final σ.
    let sigmas: [Double]
    private var previousX0: Tensor?
    private var lowerOrderSteps = 0

    init(_ config: SchedulerConfiguration, steps: Int) {
        configuration = config
        let alphas = config.alphasCumprod
        let train = alphas.map { ((1 - $0) / $0).squareRoot() }
        timesteps = config.timesteps(steps, dpm: true)
        let final = config.finalSigmasType == "zero" ? 0 : train[0]
        sigmas = timesteps.map { train[$0] } + [final]
    }

    /// (α, σ·α, λ) for σ.
    private func terms(_ sigma: Double) -> (alpha: Double, sigma: Double, lambda: Double) {
        let alpha = 1 / (sigma * sigma + 1).squareRoot(), s = sigma * alpha
        return (alpha, s, Foundation.log(alpha) - Foundation.log(s))
    }

    public func step(_ output: Tensor, index: Int, sample: Tensor) throws(TensorError) -> Tensor {
        if index == 0 {
            previousX0 = nil
            lowerOrderSteps = 0
        }
        let now = terms(sigmas[index]), next = terms(sigmas[index + 1])
        let x0: Tensor
        switch configuration.predictionType {
        case "sample": x0 = output
        case "v_prediction": x0 = try sample * Float(now.alpha) - output * Float(now.sigma)
        default: x0 = try (sample - output * Float(now.sigma)) / Float(now.alpha)
        }
        let count = timesteps.count
        let finalLowerOrder = index == count - 1 && (configuration.eulerAtFinal
            || (configuration.lowerOrderFinal && count < 15) || configuration.finalSigmasType == "zero")
        let h = next.lambda - now.lambda
        let decay = Foundation.exp(-h) - 1 // −1 when the next σ is 0 (λ = +∞)
        let ratio = next.sigma / now.sigma
        var result = try sample * Float(ratio.isFinite ? ratio : 0) - x0 * Float(next.alpha * decay)
        if configuration.solverOrder == 2, lowerOrderSteps >= 1, !finalLowerOrder, let previous = previousX0 {
            let before = terms(sigmas[index - 1])
            let r = (now.lambda - before.lambda) / h
            let d1 = try (x0 - previous) * Float(1 / r)
            result = try result - d1 * Float(0.5 * next.alpha * decay)
        }
        previousX0 = x0
        lowerOrderSteps = Swift.min(lowerOrderSteps + 1, configuration.solverOrder)
        return result
    }
}
