return await Roam.Cli.RoamCli.Run(args);
