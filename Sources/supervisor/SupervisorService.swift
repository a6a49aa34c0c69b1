import Shared

/// Consumes agent_commands (step 2 adds component supervision and agent processes).
final class SupervisorService: SweepingService {
    init() { super.init(wakeName: "supervisor", fallbackPeriod: .seconds(1)) }
}
