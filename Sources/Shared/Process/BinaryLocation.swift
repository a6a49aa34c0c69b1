import Foundation

/// Where this executable lives: Switchyard's binaries are installed side by side.
public enum BinaryLocation {
    public static let directory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }()
}
