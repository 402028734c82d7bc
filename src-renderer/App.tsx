// The console frame: navigation (Hosts, Volumes, Pairs, Maps, Seeding, Events) and the screens.
import DnsIcon from '@mui/icons-material/Dns';
import EventNoteIcon from '@mui/icons-material/EventNote';
import GridOnIcon from '@mui/icons-material/GridOn';
import SaveIcon from '@mui/icons-material/Save';
import StorageIcon from '@mui/icons-material/Storage';
import SyncAltIcon from '@mui/icons-material/SyncAlt';
import { AppBar, Box, Drawer, List, ListItemButton, ListItemIcon, ListItemText, Toolbar, Typography } from '@mui/material';
import { useState, type ReactNode } from 'react';
import { ErrorNote } from './components/ErrorNote';
import { useEvents, useOverview } from './hooks';
import { EventsScreen } from './screens/EventsScreen';
import { PairsScreen } from './screens/PairsScreen';
import { HostsScreen } from './screens/HostsScreen';
import { MapsScreen } from './screens/MapsScreen';
import { SeedingScreen } from './screens/SeedingScreen';
import { VolumesScreen } from './screens/VolumesScreen';

type Screen = 'hosts' | 'volumes' | 'pairs' | 'maps' | 'seeding' | 'events';
const drawerWidthPx = 200;

const navigation: { screen: Screen; label: string; icon: ReactNode }[] = [
  { screen: 'hosts', label: 'Hosts', icon: <DnsIcon /> },
  { screen: 'volumes', label: 'Volumes', icon: <StorageIcon /> },
  { screen: 'pairs', label: 'Pairs', icon: <SyncAltIcon /> },
  { screen: 'maps', label: 'Maps', icon: <GridOnIcon /> },
  { screen: 'seeding', label: 'Seeding', icon: <SaveIcon /> },
  { screen: 'events', label: 'Events', icon: <EventNoteIcon /> },
];

export function App() {
  const [screen, setScreen] = useState<Screen>('pairs');
  /** The pair the map inspector opens on (from a pair's "Inspect maps…"). */
  const [inspectPair, setInspectPair] = useState<string | null>(null);
  const overview = useOverview();
  const { events, error: eventsError } = useEvents();
  return (
    <Box sx={{ display: 'flex' }}>
      <AppBar position="fixed" sx={{ zIndex: (theme) => theme.zIndex.drawer + 1 }}>
        <Toolbar variant="dense">
          <Typography variant="h6" sx={{ flexGrow: 1 }}>
            Tidemark
          </Typography>
          <Typography variant="body2" sx={{ opacity: 0.8 }} data-testid="home-dir">
            {overview.data?.homeDir ?? ''}
          </Typography>
        </Toolbar>
      </AppBar>
      <Drawer variant="permanent" sx={{ width: drawerWidthPx, flexShrink: 0, '& .MuiDrawer-paper': { width: drawerWidthPx, boxSizing: 'border-box' } }}>
        <Toolbar variant="dense" />
        <List component="nav" aria-label="screens">
          {navigation.map((item) => (
            <ListItemButton key={item.screen} selected={screen === item.screen} onClick={() => setScreen(item.screen)} data-testid={`nav-${item.screen}`}>
              <ListItemIcon>{item.icon}</ListItemIcon>
              <ListItemText primary={item.label} />
            </ListItemButton>
          ))}
        </List>
      </Drawer>
      <Box component="main" sx={{ flexGrow: 1, p: 3, minWidth: 0 }}>
        <Toolbar variant="dense" />
        <ErrorNote error={overview.error ?? eventsError} />
        {screen === 'hosts' && <HostsScreen />}
        {screen === 'volumes' && <VolumesScreen overview={overview.data} />}
        {screen === 'pairs' && (
          <PairsScreen
            overview={overview.data}
            onChanged={overview.refresh}
            onInspectMaps={(pair) => {
              setInspectPair(pair);
              setScreen('maps');
            }}
          />
        )}
        {screen === 'maps' && <MapsScreen key={inspectPair ?? ''} overview={overview.data} initialPair={inspectPair} />}
        {screen === 'seeding' && <SeedingScreen overview={overview.data} />}
        {screen === 'events' && <EventsScreen events={events} />}
      </Box>
    </Box>
  );
}
