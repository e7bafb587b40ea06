Console.WriteLine("roam: not yet");
