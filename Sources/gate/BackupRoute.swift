import Foundation
import Shared

extension GateService {
    /// Online backup: VACUUM INTO a new file under $SWITCHYARD_STATE_DIR/backups, from a separate
    /// connection on a background thread (https://www.sqlite.org/lang_vacuum.html#vacuuminto: a
    /// consistent snapshot; readers and writers of the live database carry on).
    func registerBackupRoute(_ router: inout Router) {
        router.add("POST", "/control/api/backup", .mutate, "Write a consistent copy of the database to the state folder") { [unowned self] context in
            let body = try context.body(allowed: ["requested_by"])
            let actor = context.actor(try context.string(body, "requested_by", maxBytes: 128))
            let directory = self.runtime.configuration.stateDirectory + "/backups"
            let stamp = Timestamp.iso8601(context.now).replacingOccurrences(of: ":", with: "").replacingOccurrences(of: ".", with: "-")
            let path = "\(directory)/switchyard-\(stamp).db"
            let source = self.runtime.configuration.databasePath
            let options = self.runtime.configuration.databaseOptions
            try AuditLog(db: self.runtime.db).record(actor: actor, tokenIdentity: context.principal?.identity, action: "backup",
                                                     at: context.now, detail: ["path": .string(path)])
            return self.deferred {
                do {
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                            attributes: [.posixPermissions: 0o750])
                    let started = MonotonicInstant.now()
                    let db = try Database(path: source, options: options)
                    try db.backup(to: path)
                    let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                    return .json(200, ["ok": true, "path": .string(path), "bytes": .int(Int64(size)),
                                       "seconds": .double(MonotonicInstant.now().duration(since: started).secondsDouble)])
                } catch {
                    return .error(500, "backup failed: \(error)")
                }
            }
        }
    }
}
