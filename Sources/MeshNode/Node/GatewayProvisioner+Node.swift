extension GatewayProvisioner {
    /// The provisioner of a running node: gateways recorded in its state directory, local ones
    /// joining at its listen address, cloud ones at its advertised address.
    init(node o: AgentOptions, boundPort: Int, secrets: any SecretsService, api: NodeAPI) {
        let wildcard = o.listenHost == "0.0.0.0" || o.listenHost == "::"
        var advertised = o
        advertised.listenPort = boundPort
        self.init(context: Context(
            stateDirectory: o.stateDirectory,
            localJoin: HostPort.format(wildcard ? "127.0.0.1" : o.listenHost, boundPort),
            cloudJoin: advertised.advertisedAddress,
            projectSettings: { project in try await secrets.values(project: project).values },
            peers: api.peers, gateways: api.gateways))
    }
}
