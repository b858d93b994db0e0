import ArgumentParser

@main
struct Warren: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warren",
        abstract: "A peer-to-peer mesh that puts applications on the public internet through gateways.",
        subcommands: [DebugLinkCommand.self]
    )
}
